package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshstream"
	"github.com/natsmesh/natsmesh/internal/outconn"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Sender sends one outbound call and returns the reply: the service's own
// answer, whatever its status, read once ([Reply]). Every failure of the
// mesh comes back as a *wire.Error instead, including a reply that carries
// one (an instance that answered overloaded, a remote timeout), so a
// middleware classifies outcomes with errors.Is against the wire sentinels
// and never has to read a reply's headers to learn that the mesh failed;
// how the service's answer came out is the reply's [Reply.Outcome], or,
// for a stream, what [Reply.OnEnd] tells.
//
// Send must not modify c. The reply belongs to the caller, who reads a
// streamed one to its end or closes it.
type Sender interface {
	Send(ctx context.Context, c *Call) (*Reply, error)
}

// SendFunc adapts a function to a [Sender].
type SendFunc func(ctx context.Context, c *Call) (*Reply, error)

// Send calls f.
func (f SendFunc) Send(ctx context.Context, c *Call) (*Reply, error) { return f(ctx, c) }

// OutboundMiddleware wraps a Sender with one concern (a policy, a span, a
// metric, a fault).
type OutboundMiddleware func(next Sender) Sender

// DefaultTimeout bounds a call whose context has no deadline: every NATS
// request has one, so no caller ever waits forever.
const DefaultTimeout = 30 * time.Second

// DefaultReconnectGrace is how long a call waits for a lost broker
// connection to come back before failing with broker-unavailable.
const DefaultReconnectGrace = 2 * time.Second

// OutboundConfig configures an [Outbound]. Zero values take the defaults
// noted on each field.
type OutboundConfig struct {
	// Timeout is the deadline of a call whose context has none. Default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxTimeout bounds the deadline a caller sets (its context's, a
	// Mesh-Timeout request header, a gRPC client's grpc-timeout): a call is
	// given at most MaxTimeout. Zero means no bound. This is the agent-wide
	// ceiling; a route's timeout in the mesh file bounds its calls further.
	MaxTimeout time.Duration
	// ReconnectGrace is how long a call made while the connection to the
	// broker is down waits for it to come back, within its deadline, before
	// it fails with broker-unavailable. Default DefaultReconnectGrace;
	// negative fails at once.
	ReconnectGrace time.Duration
	// Middleware wraps the NATS request, the first outermost: a call passes
	// Middleware[0], then Middleware[1], ..., then the request.
	Middleware []OutboundMiddleware
	// StreamWindow is the credit granted a streamed answer: the most of
	// it the pipeline holds unread. Default wire.DefaultStreamWindow.
	StreamWindow int64
	// StreamIdle is how long a stream may hear nothing from the callee's
	// side (it sends keep-alives) before it fails with a timeout. Default
	// wire.DefaultStreamIdle.
	StreamIdle time.Duration
	// TakeWithin is how long a call to a mesh service waits at least for
	// a sign of life from the instance that got it (an answer, or an
	// accept) before it is sent again to the queue group: what a frozen
	// or dead instance costs a call. The wait grows past it when the
	// signs of live instances come late (a loaded host), as TCP's
	// retransmission timeout does (docs/wire.md, "Liveness"). Default
	// wire.DefaultTakeWithin; wire.MinTakeWithin to wire.MaxTakeWithin.
	TakeWithin time.Duration
}

// Outbound is the one outbound pipeline of an agent or gateway: every entry
// point (HTTP proxy, bind ports, gRPC proxy, in-process Transport and
// ClientConn, the edge gateway) sends through it. In order, a call:
//
//  1. gets its deadline, here and nowhere else: the caller's (at most
//     MaxTimeout), or Timeout when the caller set none;
//  2. passes the middleware, the first outermost;
//  3. is sent as one NATS request per attempt: each attempt is a new
//     message with a header map of its own carrying Mesh-Timeout, the time
//     left on that attempt's context, so concurrent attempts share nothing
//     and the receiver stops work when the caller gives up. Its reply
//     subject is in the pair inbox of the caller and the service called,
//     wire.PairInbox(caller, service) (wire.PeerNATS for a plain NATS
//     subject), received by the caller's reply mux (internal/replymux),
//     one per caller and connection, made at the caller's first call
//     (internal/outconn);
//     the connection's user must be allowed to subscribe to the caller's
//     inbox (wire.InboxPrefix(caller)+".>"). A call to a mesh service
//     uses the stream protocol (docs/wire.md, "Streams"): a streamed
//     body is sent in frames, and the answer is whole or streamed; the
//     reply is read once into a [Reply].
//
// Failures come back as *wire.Error: no responders (naming the service and
// subset), timeout, a broken or lost connection (broker-unavailable when
// nothing was sent: after ReconnectGrace, or refused by a closed pipeline;
// connection-lost when the call may have run), a permission violation
// (forbidden: the broker refused the publish, reported on the
// connection's async error handler, which NewOutbound chains its own in
// front of), a reply subscription the broker refuses (forbidden, at once:
// the caller's connection may not subscribe its inbox; told before the
// first call is sent, or when nats.go subscribes again after a reconnect,
// and then for a minute without asking the broker again), and a mesh
// error that a reply carries.
type Outbound struct {
	nc         *nats.Conn
	timeout    time.Duration
	maxTimeout time.Duration
	chain      Sender
	ns         *natsSender
}

var _ Sender = (*Outbound)(nil)

// NewOutbound returns the pipeline that sends over nc.
func NewOutbound(nc *nats.Conn, cfg OutboundConfig) (*Outbound, error) {
	if nc == nil {
		return nil, errors.New("pipeline: nil NATS connection")
	}
	if cfg.Timeout < 0 || cfg.MaxTimeout < 0 {
		return nil, fmt.Errorf("pipeline: negative timeout %v", min(cfg.Timeout, cfg.MaxTimeout))
	}
	if err := checkStreamIdle(cfg.StreamIdle); err != nil {
		return nil, err
	}
	if d := cfg.TakeWithin; d != 0 && (d < wire.MinTakeWithin || d > wire.MaxTakeWithin) {
		return nil, fmt.Errorf("pipeline: take-within %v: it must be from %v to %v (0: the default, %v)",
			d, wire.MinTakeWithin, wire.MaxTakeWithin, wire.DefaultTakeWithin)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ReconnectGrace == 0 {
		cfg.ReconnectGrace = DefaultReconnectGrace
	}
	ns := &natsSender{nc: nc, conn: outconn.New(nc, cfg.ReconnectGrace),
		stream: meshstream.Config{Window: cfg.StreamWindow, Idle: cfg.StreamIdle, Take: meshstream.NewTake(cfg.TakeWithin)}}
	var s Sender = ns
	for i := len(cfg.Middleware) - 1; i >= 0; i-- {
		s = cfg.Middleware[i](s)
	}
	return &Outbound{nc: nc, timeout: cfg.Timeout, maxTimeout: cfg.MaxTimeout, chain: s, ns: ns}, nil
}

// Close unsubscribes the pipeline's reply muxes and fails the calls
// waiting for a reply (connection-lost); calls sent after it fail with
// broker-unavailable. It does not close the connection. Safe to call more
// than once.
func (o *Outbound) Close() error { return o.ns.conn.Close() }

// Send sends c through the middleware and over NATS.
func (o *Outbound) Send(ctx context.Context, c *Call) (*Reply, error) {
	d, ok := ctx.Deadline()
	switch {
	case !ok:
		// A deadline the caller did not choose bounds a stream only
		// until its head (docs/wire.md, "Streams").
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithValue(ctx, headOnlyKey{}, ctx), o.timeout)
		defer cancel()
	case o.maxTimeout > 0 && time.Until(d) > o.maxTimeout:
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.maxTimeout)
		defer cancel()
	}
	return o.chain.Send(ctx, c)
}

var deadlineHead = []string{"head"}

// headOnlyKey marks a context whose deadline is the pipeline's default,
// not the caller's: its value is the caller's own context, whose
// cancellation ends a stream that outlives the default.
type headOnlyKey struct{}

// Limits are the bounds of a message on the connection now: its server's
// max_payload (it may change on reconnect).
func (o *Outbound) Limits() wire.Limits { return LimitsOf(o.nc) }

// Conn is the pipeline's NATS connection.
func (o *Outbound) Conn() *nats.Conn { return o.nc }

// natsSender is the end of the outbound pipeline: one NATS request,
// through the reply mux of its caller (internal/outconn).
type natsSender struct {
	nc     *nats.Conn
	conn   *outconn.Conn
	stream meshstream.Config
}

func (s *natsSender) Send(ctx context.Context, c *Call) (*Reply, error) {
	// The reply's peer: the service called, or the reserved peer of a
	// NATS-native responder.
	peer := wire.PeerNATS
	if c.Subject == "" {
		if err := (wire.Subject{Service: c.Service, Subset: c.Subset, Caller: c.Caller, Proto: c.Proto}).Validate(); err != nil {
			return nil, &wire.Error{Kind: wire.KindNoRoute, Message: err.Error(), Err: err}
		}
		peer = c.Service
	}
	if err := s.conn.Connected(ctx); err != nil {
		return nil, err
	}
	mux, err := s.conn.Mux(ctx, c.Caller)
	if err != nil {
		return nil, err
	}
	data := c.Body.Bytes
	var trailer nats.Header
	if st := c.Body.Stream; st != nil && c.Subject != "" {
		// A NATS-native responder takes one message: the body whole,
		// its trailer in the header, up to max_payload.
		if data, trailer, err = readStream(ctx, st, LimitsOf(s.nc).PayloadLimit()); err != nil {
			return nil, err
		}
	}
	deadline, _ := ctx.Deadline()
	left := time.Until(deadline)
	if left <= 0 {
		return nil, &wire.Error{Kind: wire.KindTimeout, Message: "deadline passed before the request was sent"}
	}
	// The attempt's own header: the call's, copied whole (the values are
	// shared, never written), with the attempt's Mesh-Timeout.
	h := maps.Clone(c.Header)
	if h == nil {
		h = make(nats.Header, 1)
	}
	for k, vs := range trailer {
		h[k] = vs
	}
	wire.SetTimeout(h, left)
	wire.SetStartBy(h, deadline)
	// The request message and its Reply in one allocation: the request's
	// life ends where the reply's begins.
	x := &exchange{req: nats.Msg{Subject: c.MeshSubject(), Header: h, Data: data}}
	m := &x.req
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.conn.Track(m, cancel)
	var reply *nats.Msg
	var streamed *meshstream.Answer
	if c.Subject == "" {
		// A mesh service: the stream protocol, whose answer is whole
		// when it fits in one message and the request body is whole.
		r := meshstream.Request{Msg: m, Caller: c.Caller, Service: c.Service, Confirm: !IsIdempotent(ctx, c)}
		if c.Body.Stream != nil {
			r.Body = c.Body.Stream
		}
		base, _ := ctx.Value(headOnlyKey{}).(context.Context)
		switch {
		case base == nil || c.Proto == wire.ProtoGRPC && len(c.Header[grpcwire.HeaderGRPCStream]) == 0:
			// The caller's own deadline, or a unary gRPC call's (one
			// answer, whole: its deadline is the call's, as grpc-go's
			// server sees it).
			r.Deadline = deadline
			delete(h, wire.HeaderStreamDeadline) // an adapter's "none"
		case len(c.Header[wire.HeaderStreamDeadline]) > 0 && c.Header.Get(wire.HeaderStreamDeadline) == "none":
			// An adapter that knows its call is a stream whose head may
			// wait for its first message as long as it likes (a gRPC
			// server stream through the in-process ClientConn): once
			// the callee has opened the call, its idle timeout and the
			// caller's cancel bound it.
			r.Unbounded, r.Cancel = true, base
		default:
			h[wire.HeaderStreamDeadline] = deadlineHead
			// A streamed body is sent first: the callee times the head
			// from its end, and the caller waits for it as long as the
			// call stays open. An upgrade's body follows its head: it
			// is timed as a whole one.
			if r.Body != nil && len(c.Header[wire.HeaderUpgrade]) == 0 {
				r.Unbounded, r.Cancel = true, base
			}
		}
		streamed, err = meshstream.Call(ctx, mux, s.nc, r, s.stream)
		if streamed != nil {
			reply = streamed.Msg
		}
	} else {
		reply, err = mux.Request(ctx, m, peer)
	}
	s.conn.Untrack(m)
	x.req = nats.Msg{} // keeps neither the header nor the body
	if err != nil {
		return nil, outconn.SendError(ctx, err, c.Caller, c.Dest())
	}
	if reply == nil {
		// A streamed answer: its head now, its body as it comes.
		if e := wire.ReplyError(streamed.Head); e != nil {
			streamed.Body.Close()
			return nil, e
		}
		return NewStreamReply(c.Proto, streamed.Head, streamed.Body), nil
	}
	if e := wire.ReplyError(reply.Header); e != nil {
		return nil, e
	}
	x.reply.fromMsg(c.Proto, reply)
	return &x.reply, nil
}

// exchange is one attempt's request message and its reply.
type exchange struct {
	req   nats.Msg
	reply Reply
}
