package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// Call is one request crossing the mesh, already parsed: where it goes, who
// sends it, what operation it is, and its message. Both pipelines pass a
// *Call from the entry point to the end, so no middleware parses a subject
// or a header to learn what the call is.
//
// A Call is the unit a middleware may copy: [Call.Clone] gives a copy its
// own header map and the same body (a split that picks a subset, a
// telemetry that adds a traceparent: the same attempt), [Call.Replay] also
// a body read again from its start (a retry, a hedge, a mirror: another
// attempt). Nothing in the mesh writes to a Call's Header or Body once the
// call has entered a pipeline; a middleware that needs a different header
// sends a clone.
//
// Its body is whole (Body.Bytes, the unary message's payload) or a stream
// (Body.Stream), replayable or not; its routing fields are the same
// either way, and so is every middleware's decision. A stream lives as
// long as its call: whoever made it (the entry point, a policy for the
// replay it made) closes it once the call has ended ([Call.CloseBody]).
type Call struct {
	// Service and Subset name the destination: a meshed service and, when
	// Subset is set, only its instances of that subset. Subset "" means any
	// instance; never wire.AnySubset, the subject's token (the mesh's
	// entry points, meshhttp.NewCall and meshgrpc.Send among them, pass a
	// subset through wire.NormalSubset, and the inbound dispatch reads it
	// with wire.ParseSubject).
	Service string
	Subset  string
	// Subject, when set, is a plain NATS subject (a NATS-native endpoint
	// such as a nats.go/micro service) that the call goes to instead of a
	// mesh service; Service and Subset are then empty.
	Subject string
	// Egress, when set, says the call leaves the mesh for a host outside
	// it (package egress): its value is the host's entry in the mesh
	// file (policies.File.EgressEntry: the host as listed, or
	// policies.EgressOther for an unlisted one), which the policies and
	// the telemetry go by; the host itself is the request's (Mesh-Host).
	// Service, Subset and Subject are then empty, and the call is never
	// sent over NATS.
	Egress string
	// Caller is the calling service, the caller token of the subject.
	Caller string
	// Proto says how Header and Body are to be read.
	Proto wire.Proto
	// Op is the operation: the HTTP method, or the full gRPC method
	// ("/pkg.Service/Method").
	Op string
	// Path is the escaped path of an HTTP call, for routing; "" for gRPC.
	Path string
	// Header and Body are the request message as the wire format encodes
	// it: the header of its first message, and its body, whole or a
	// stream. Inbound, they are the received message's.
	Header nats.Header
	Body   Body

	// msg is the received message, inbound.
	msg *nats.Msg
}

// Dest names the destination for people: "orders", "orders@v2", the
// subject of a NATS-native endpoint, or "egress:" and the external host's
// entry.
func (c *Call) Dest() string {
	switch {
	case c.Subject != "":
		return c.Subject
	case c.Egress != "":
		return "egress:" + c.Egress
	case c.Subset != "":
		return c.Service + "@" + c.Subset
	}
	return c.Service
}

// MeshSubject is the NATS subject the call is sent on.
func (c *Call) MeshSubject() string {
	if c.Subject != "" {
		return c.Subject
	}
	return wire.Subject{Service: c.Service, Subset: c.Subset, Caller: c.Caller, Proto: c.Proto, Op: c.Op}.String()
}

// Clone returns a copy of c with a header map of its own (the values are
// shared: they are never written in place) and the same body: a whole
// body's bytes, or the same stream, read once between them (net/http's
// Request.Clone shares its Body so). The clone of a received call is a
// received call whose message has the clone's header, so a handler that
// reads the message ([Call.Msg]) sees what a middleware changed.
func (c *Call) Clone() *Call {
	d := *c
	d.Header = make(nats.Header, len(c.Header)+1)
	for k, vs := range c.Header {
		d.Header[k] = vs
	}
	if c.msg != nil {
		d.msg = &nats.Msg{Subject: c.msg.Subject, Reply: c.msg.Reply, Header: d.Header, Data: c.msg.Data, Sub: c.msg.Sub}
	}
	return &d
}

// Msg is the call as a NATS message: the received one inbound, a new
// message on the call's subject otherwise.
func (c *Call) Msg() *nats.Msg {
	if c.msg != nil {
		return c.msg
	}
	return &nats.Msg{Subject: c.MeshSubject(), Header: c.Header, Data: c.Body.Bytes}
}

// ErrNotReplayable is what [Call.Replay] fails with for a body that can be
// read once only: a stream without Body.Replay.
var ErrNotReplayable = errors.New("pipeline: the call's body is a stream that cannot be replayed")

// Replay returns a copy of c for another attempt (a retry, a hedge, a
// mirror): a [Call.Clone] whose body reads again from its start, the same
// bytes of a whole body, a new stream from Body.Replay. The new stream is
// the caller's to close ([Call.CloseBody]) once the attempt has ended. A
// body that cannot be replayed fails with ErrNotReplayable; a Replay that
// fails, with its error.
func (c *Call) Replay() (*Call, error) {
	d := c.Clone()
	if c.Body.Stream == nil {
		return d, nil
	}
	if c.Body.Replay == nil {
		return nil, ErrNotReplayable
	}
	s, err := c.Body.Replay()
	if err != nil {
		return nil, fmt.Errorf("pipeline: replaying the call's body: %w", err)
	}
	d.Body.Stream = s
	return d, nil
}

// CloseBody closes c's body stream once the call that returned reply and
// err has ended: at once, or, for a streamed reply, at its end (a stream's
// request may go on while its answer does). The maker of a stream calls
// it: an entry point for its call's, a policy for a replay it made. A
// stream read to its end needs no Close, and gets a harmless one; a whole
// body needs nothing.
func (c *Call) CloseBody(reply *Reply, err error) {
	s := c.Body.Stream
	if s == nil {
		return
	}
	if err == nil && reply.Streamed() {
		reply.OnEnd(func(wire.Outcome) { s.Close() })
		return
	}
	s.Close()
}

// Idempotent reports whether repeating the call is safe by its method:
// HTTP GET, HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110 section 9.2.2).
// gRPC methods are not, unless a policy marks their route idempotent.
func (c *Call) Idempotent() bool {
	if c.Proto != wire.ProtoHTTP {
		return false
	}
	switch c.Op {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// idempotentKey marks the context of a call a policy marks idempotent.
type idempotentKey struct{}

// WithIdempotent marks ctx's call idempotent whatever its method (a
// policy says so: resilience), for [IsIdempotent].
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// IsIdempotent reports whether repeating c, sent with ctx, is safe: by
// its method ([Call.Idempotent]) or because a policy says so
// ([WithIdempotent]). The outbound pipeline asks its callee to start any
// other call only once confirmed (docs/wire.md, "Liveness").
func IsIdempotent(ctx context.Context, c *Call) bool {
	if c.Idempotent() {
		return true
	}
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

// HeaderValue returns the first value of the request header name, looked
// up case-insensitively as HTTP does, for matching routes by header.
func (c *Call) HeaderValue(name string) string {
	if vs, ok := c.Header[name]; ok && len(vs) > 0 {
		return vs[0]
	}
	if vs, ok := c.Header[textproto.CanonicalMIMEHeaderKey(name)]; ok && len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range c.Header {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// callerKey is the context key of the calling service's name.
type callerKey struct{}

// WithCaller returns ctx carrying the calling service's name, as read from a
// request's subject, for [CallerFrom]. The inbound pipeline sets it before
// any handler runs; handlers never take the caller from a header a client
// could forge.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerFrom returns the name of the service that made the inbound call
// served under ctx, as the broker vouches for it (the subject's caller
// token).
func CallerFrom(ctx context.Context) (string, bool) {
	switch c := ctx.Value(callerKey{}).(type) {
	case string:
		return c, true
	case *string: // withCallerOf's
		return *c, true
	}
	return "", false
}

// withCallerOf is [WithCaller] with the caller of c, which it refers to
// rather than copies into an interface (an allocation per call).
func withCallerOf(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callerKey{}, &c.Caller)
}
