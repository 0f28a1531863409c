package meshhttp

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/meshhttp/internal/httpstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// NewCall encodes r as the call dest describes: dest's Service and
// Subset (wire.NormalSubset), or Subject, and Caller; the protocol,
// operation, path and message are set from r, bounded by lim. It fails with
// the *wire.Error of [httpwire.EncodeRequest] or
// [httpwire.EncodeRequestHead].
//
// A body of known length up to [WholeBodyMax] is read here, and closed, and
// crosses whole (replayable); a larger one, or one of unknown length
// (chunked), is a stream of r.Body, which the call's sender reads as it
// goes and whose maker closes it once the call has ended
// ([pipeline.Call.CloseBody]; [Send] does). A client's request whose body
// r.GetBody reads again is replayable. A NATS-native destination (Subject)
// takes whole bodies only: a body over max_payload is too-large.
func NewCall(r *http.Request, dest pipeline.Call, lim wire.Limits) (*pipeline.Call, error) {
	return newCall(r, r, dest, lim, nil)
}

// newCall is NewCall whose body stream, when it is one, takes its trailer
// from in's Trailer (the request as the client sent it, whose Trailer its
// body fills, when r is a Rewrite hook's copy of it), and ends a read in
// progress with unblock before it closes (see httpstream.Source).
func newCall(r, in *http.Request, dest pipeline.Call, lim wire.Limits, unblock func()) (*pipeline.Call, error) {
	c := dest
	c.Subset = wire.NormalSubset(c.Subset)
	c.Proto, c.Op = wire.ProtoHTTP, r.Method
	if dest.Subject != "" || wholeBody(r, lim) {
		m, err := httpwire.EncodeRequest(r, lim)
		if err != nil {
			return nil, err
		}
		c.Header, c.Body = m.Header, pipeline.Body{Bytes: m.Data}
	} else {
		m, err := httpwire.EncodeRequestHead(r, lim)
		if err != nil {
			closeBody(r)
			return nil, err
		}
		// An upgrade is carried only as one (exchange.newCall): sent
		// here, the request is a plain one, as a whole one is.
		delete(m.Header, httpwire.HeaderUpgrade)
		c.Header, c.Body.Stream = m.Header, requestStream(in, r.Body, unblock)
		if r.GetBody != nil {
			get := r.GetBody
			c.Body.Replay = func() (pipeline.Stream, error) {
				body, err := get()
				if err != nil {
					return nil, err
				}
				return requestStream(in, body, nil), nil
			}
		}
	}
	c.Path = c.Header.Get(wire.HeaderPath)
	return &c, nil
}

// wholeBody reports whether r's body crosses whole: none, or a known
// length up to [wholeLimit]. A client's request with a body and a
// ContentLength of 0 has a length not known (http.Request.ContentLength).
func wholeBody(r *http.Request, lim wire.Limits) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	return r.ContentLength > 0 && r.ContentLength <= wholeLimit(lim)
}

// requestStream is the stream of body, r's, whose trailer is r's Trailer
// at its end.
func requestStream(r *http.Request, body io.ReadCloser, unblock func()) *httpstream.Source {
	return &httpstream.Source{R: body, Fail: requestFailure, Unblock: unblock,
		TrailerOf: func() nats.Header { return httpwire.TrailerHeader(r.Trailer) }}
}

// Send sends c through s and decodes the reply. Mesh failures come back
// as *wire.Error. A streamed reply's response reads the stream as it
// arrives, under ctx, which must last until its Body is closed; its
// Trailer gets the values at the stream's end. Send closes c's body
// stream once the call has ended ([pipeline.Call.CloseBody]).
func Send(ctx context.Context, s pipeline.Sender, c *pipeline.Call) (*http.Response, error) {
	return send(ctx, s, c, nil)
}

// send is Send that calls done once the call is over: at once, or, for a
// streamed reply, when the response's Body is closed.
func send(ctx context.Context, s pipeline.Sender, c *pipeline.Call, done func()) (*http.Response, error) {
	if done == nil {
		done = func() {}
	}
	reply, err := s.Send(ctx, c)
	c.CloseBody(reply, err)
	if err != nil {
		done()
		return nil, err
	}
	if !reply.Streamed() {
		defer done()
		return decodeWhole(c, reply.Msg())
	}
	stream := reply.Body.Stream
	resp, err := httpwire.DecodeResponseHead(reply.Header)
	if err != nil {
		stream.Close()
		done()
		return nil, err
	}
	resp.Body = &httpstream.Body{Ctx: ctx, S: stream, OnClose: done, OnEOF: func(t nats.Header) error {
		if tr := httpwire.ReadTrailer(t, true); len(tr) > 0 {
			if resp.Trailer == nil {
				resp.Trailer = make(http.Header, len(tr))
			}
			fillTrailer(resp.Trailer, tr)
		}
		return nil
	}}
	return resp, nil
}

// decodeWhole is the response of c's whole reply m.
func decodeWhole(c *pipeline.Call, m *nats.Msg) (*http.Response, error) {
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
// its Mesh-Timeout request header ([wire.RequestTimeout]), counted from
// now, or as an absolute time in its Mesh-Start-By request header (Unix
// milliseconds, [wire.StartBy]: a request read late, by an agent that was
// frozen or starved, is not sent past it), the sooner of the two, when it
// set one, for the HTTP entry points. The deadline only ever shortens
// ctx's, and the outbound pipeline bounds it by its MaxTimeout (and a
// route's timeout, once policies apply one). A malformed value fails with
// bad-request.
func CallerDeadline(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc, error) {
	d, err := wire.RequestTimeout(r.Header)
	if err != nil {
		return ctx, func() {}, err
	}
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	if len(r.Header[wire.HeaderStartBy]) > 0 {
		sb, ok, err := wire.StartBy(nats.Header(r.Header))
		if err != nil {
			return ctx, func() {}, err
		}
		if ok && (deadline.IsZero() || sb.Before(deadline)) {
			deadline = sb
		}
	}
	if deadline.IsZero() {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	return ctx, cancel, nil
}

// exchange is what an entry point lends the call of one request beyond
// the request: how to end a read of its body in progress (a Proxy's
// connection), and the tunnel of a protocol upgrade, when it carries one.
type exchange struct {
	unblock func()
	// upgrade, when set, carries a request that asks for an upgrade
	// ([httpwire.Upgrade]): its body is tunnel, the client's bytes once
	// the service has switched protocols.
	upgrade func() *httpstream.Tunnel
	tunnel  *httpstream.Tunnel
	// streamed reports that the call's body is a stream of the request's.
	streamed bool
}

// roundTrip is the one way an HTTP request crosses the mesh, from every
// entry point ([Proxy], [Transport]): the deadline the client asked for
// ([CallerDeadline]), the rewrite of the request (rewrite, when set), the
// call to dest encoded ([NewCall], bounded by lim) and sent through s, the
// reply decoded ([Send]), of which only a final status (200 to 599) is an
// answer, or a 101 to a request that asked for the upgrade; an empty
// answer to HEAD tells no Content-Length. r's body is closed once the
// call has ended, whatever happens; a streamed answer's body is read
// under the client's deadline until it is closed. Mesh failures come back
// as *wire.Error.
func roundTrip(s pipeline.Sender, r *http.Request, dest pipeline.Call, lim wire.Limits, rewrite func(*ProxyRequest) error, x *exchange) (*http.Response, error) {
	ctx, cancel, err := CallerDeadline(r.Context(), r)
	if err != nil {
		cancel()
		closeBody(r)
		return nil, err
	}
	if x == nil {
		x = &exchange{}
	}
	var c *pipeline.Call
	if rewrite == nil {
		c, err = x.newCall(r, r, dest, lim)
	} else {
		rw := rewritings.Get().(*rewriting)
		rw.out = *r
		rw.pr = ProxyRequest{In: r, Out: &rw.out, Limits: lim, dest: dest}
		if err = rewrite(&rw.pr); err == nil {
			c, err = x.newCall(rw.pr.Out, r, dest, rw.pr.Limits)
		} else {
			closeBody(r)
		}
		// The call holds nothing of the request it was encoded from.
		*rw = rewriting{}
		rewritings.Put(rw)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := send(ctx, s, c, cancel)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols && x.tunnel != nil && httpwire.Upgrade(resp.Header) != "" {
		return resp, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		// Only a final status may reach the client: a forged 101 would
		// make it switch protocols, a 1xx would leave it waiting.
		resp.Body.Close()
		return nil, wire.Errorf(wire.KindUpstream, "service answered status %d", resp.StatusCode)
	}
	return resp, nil
}

// newCall is [NewCall] of r with what x lends it: an upgrade's tunnel
// as its body.
func (x *exchange) newCall(r, in *http.Request, dest pipeline.Call, lim wire.Limits) (*pipeline.Call, error) {
	if x.upgrade == nil || dest.Subject != "" || httpwire.Upgrade(r.Header) == "" {
		c, err := newCall(r, in, dest, lim, x.unblock)
		x.streamed = err == nil && c.Body.Streamed()
		return c, err
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		closeBody(r)
		return nil, wire.Errorf(wire.KindBadRequest, "an upgrade request (Upgrade: %.32q) with a body is not carried", httpwire.Upgrade(r.Header))
	}
	closeBody(r)
	m, err := httpwire.EncodeRequestHead(r, lim)
	if err != nil {
		return nil, err
	}
	x.tunnel = x.upgrade()
	c := dest
	c.Subset = wire.NormalSubset(c.Subset)
	c.Proto, c.Op, c.Header, c.Body = wire.ProtoHTTP, r.Method, m.Header, pipeline.Body{Stream: x.tunnel}
	c.Path = m.Header.Get(wire.HeaderPath)
	return &c, nil
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
