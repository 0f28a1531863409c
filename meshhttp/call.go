package meshhttp

import (
	"context"
	"net/http"
	"sync"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// NewCall encodes r (its body read and closed here, bounded by lim) as
// the call dest describes: dest's Service and Subset (wire.NormalSubset),
// or Subject, and Caller; the protocol, operation, path and message are
// set from r. It fails with the *wire.Error of [httpwire.EncodeRequest].
func NewCall(r *http.Request, dest pipeline.Call, lim wire.Limits) (*pipeline.Call, error) {
	m, err := httpwire.EncodeRequest(r, lim)
	if err != nil {
		return nil, err
	}
	c := dest
	c.Subset = wire.NormalSubset(c.Subset)
	c.Proto, c.Op, c.Header, c.Body = wire.ProtoHTTP, r.Method, m.Header, pipeline.Body{Bytes: m.Data}
	c.Path = m.Header.Get(wire.HeaderPath)
	return &c, nil
}

// Send sends c through s and decodes the reply. Mesh failures come back
// as *wire.Error. A streamed reply is read whole (up to the max_payload of
// s's connection, when s is a *pipeline.Outbound, else wire's default),
// until the stream protocol (issue 18) lets it reach the client as it
// arrives.
func Send(ctx context.Context, s pipeline.Sender, c *pipeline.Call) (*http.Response, error) {
	reply, err := s.Send(ctx, c)
	if err != nil {
		return nil, err
	}
	m := reply.Msg()
	if reply.Streamed() {
		if m, err = reply.ReadWhole(ctx, senderLimits(s).PayloadLimit()); err != nil {
			return nil, err
		}
	}
	resp, err := httpwire.DecodeResponse(m)
	if err == nil && c.Op == http.MethodHead && len(m.Data) == 0 && m.Header.Get(wire.HeaderContentLength) == "" {
		// The answer to HEAD has no body, and the service told no length
		// (Mesh-Content-Length): a Content-Length of 0 would be the body
		// that crossed, which tells nothing of the resource; leave it out.
		// A length the service told, 0 included, passes.
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	return resp, err
}

// CallerDeadline returns ctx with the deadline the client of r asked for in
// its Mesh-Timeout request header ([wire.RequestTimeout]), when it set one,
// for the HTTP entry points. The deadline only ever shortens ctx's, and the
// outbound pipeline bounds it by its MaxTimeout (and a route's timeout,
// once policies apply one). A malformed value fails with bad-request.
func CallerDeadline(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc, error) {
	d, err := wire.RequestTimeout(r.Header)
	if err != nil {
		return ctx, func() {}, err
	}
	if d == 0 {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, nil
}

// roundTrip is the one way an HTTP request crosses the mesh, from every
// entry point ([Proxy], [Transport]): the deadline the client asked for
// ([CallerDeadline]), the rewrite of the request (rewrite, when set), the
// call to dest encoded ([NewCall], bounded by lim) and sent through s, the
// reply decoded ([Send]), of which only a final status (200 to 599) is an
// answer; an empty answer to HEAD tells no Content-Length. r's body is
// closed, whatever happens. Mesh failures come back as *wire.Error.
func roundTrip(s pipeline.Sender, r *http.Request, dest pipeline.Call, lim wire.Limits, rewrite func(*ProxyRequest) error) (*http.Response, error) {
	ctx, cancel, err := CallerDeadline(r.Context(), r)
	defer cancel()
	if err != nil {
		closeBody(r)
		return nil, err
	}
	var c *pipeline.Call
	if rewrite == nil {
		c, err = NewCall(r, dest, lim)
	} else {
		x := rewritings.Get().(*rewriting)
		x.out = *r
		x.pr = ProxyRequest{In: r, Out: &x.out, Limits: lim, dest: dest}
		if err = rewrite(&x.pr); err == nil {
			c, err = NewCall(x.pr.Out, dest, x.pr.Limits)
		} else {
			closeBody(r)
		}
		// The call holds nothing of the request it was encoded from.
		*x = rewriting{}
		rewritings.Put(x)
	}
	if err != nil {
		return nil, err
	}
	resp, err := Send(ctx, s, c)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		// Only a final status may reach the client: a forged 101 would
		// make it switch protocols, a 1xx would leave it waiting.
		resp.Body.Close()
		return nil, wire.Errorf(wire.KindUpstream, "service answered status %d", resp.StatusCode)
	}
	return resp, nil
}

// rewriting is what a Rewrite hook is given, a ProxyRequest and the copy
// of the request it may change, reused from one request to the next: the
// hook is the only one to see them, while it runs, and the call encoded
// from them keeps nothing of them.
type rewriting struct {
	pr  ProxyRequest
	out http.Request
}

var rewritings = sync.Pool{New: func() any { return new(rewriting) }}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// senderLimits are the bounds of a message on s's connection now, when s
// is an outbound pipeline, else wire's defaults.
func senderLimits(s pipeline.Sender) wire.Limits {
	if o, ok := s.(*pipeline.Outbound); ok {
		return o.Limits()
	}
	return wire.Limits{}
}

// limitsNow is l's bounds now, or, for a nil l, those of s ([senderLimits]).
func limitsNow(l pipeline.Limits, s pipeline.Sender) wire.Limits {
	if l == nil {
		return senderLimits(s)
	}
	return l()
}
