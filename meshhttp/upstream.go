package meshhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/meshhttp/internal/h1client"
	"github.com/natsmesh/natsmesh/meshhttp/internal/httpstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Upstream is the inbound kind for an HTTP service reached over the
// network (the sidecar's --upstream): each call becomes one request to
// Base, with the call's path appended to Base's path, Mesh-Caller set from
// the subject, and the call's deadline. A request with trailers is sent
// chunked, so they reach the service; one without Mesh-Host gets the
// service's name as its Host.
//
// A connection the service refuses (or a dial that fails) means nothing
// ran: it is answered upstream-refused, which a caller may resend to
// another instance for any method, and
// OnRefused is told so the instance can leave its queue groups at once.
type Upstream struct {
	// Base is the service's URL: scheme http or https (then Transport
	// holds the TLS settings), host:port, and an optional base path.
	// Required.
	Base *url.URL
	// Transport makes the requests. Default (nil): one transport shared by
	// every Upstream without one, made by [NewUpstreamTransport] (no
	// proxy, no compression of its own, connections kept alive), never
	// http.DefaultTransport, which would add an Accept-Encoding the client
	// never sent. When it is an *http.Transport (the default is), the
	// plain HTTP/1.1 requests (scheme http, a whole body of at most
	// 64 KiB, no trailers, no upgrade) are made in the call's goroutine on connections the
	// Upstream keeps itself, by net/http's own Request.Write and
	// ReadResponse, with the Transport's DialContext,
	// MaxIdleConnsPerHost, IdleConnTimeout and MaxResponseHeaderBytes;
	// the others by the Transport (see meshhttp/internal/h1client). A
	// Transport with a Proxy, with keep-alives disabled, with
	// compression on, or with MaxConnsPerHost, ResponseHeaderTimeout,
	// Dial or unencrypted HTTP/2 set makes them all.
	Transport http.RoundTripper
	// Limits, read per call, bound the answer; nil means the defaults.
	Limits pipeline.Limits
	// OnRefused, when set, is called after a call found the service not
	// accepting connections.
	OnRefused func(error)

	// rt is Transport, or, when it is an *http.Transport (the default's
	// too), the lean client that makes its plain HTTP/1.1 round trips
	// in the call's goroutine (internal/h1client), made on first use.
	rtOnce sync.Once
	rt     http.RoundTripper
}

var _ pipeline.Handler = (*Upstream)(nil)

// NewUpstreamTransport is the transport Upstream uses by default: no
// proxy (the agent's own HTTP_PROXY must not apply to its local service),
// no compression (bodies pass as the service wrote them), many idle
// connections to one host.
func NewUpstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// defaultUpstreamTransport is the Transport of an Upstream without
// one, made on first use.
var defaultUpstreamTransport = sync.OnceValue(NewUpstreamTransport)

// ServeCall implements [pipeline.Handler].
//
// A streamed call's body is sent to the service as it arrives (sized
// when the call told its length, else chunked), its trailer after it.
// The answer is read whole when its length is known and at most
// [WholeBodyMax] (and for HEAD), else it is a streamed reply: its head
// (status and headers) at once, its body as the service writes it, its
// trailers at the end. A protocol upgrade (Mesh-Upgrade, with a streamed
// body) is sent as one; the service's 101 is a streamed reply of its
// bytes while the call's body is written to it.
func (u *Upstream) ServeCall(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	return forward(ctx, c, hop{base: u.Base, transport: u.roundTripper(), lim: u.Limits.Now(), caller: c.Caller, who: "local service", onRefused: u.OnRefused})
}

// roundTripper is the round tripper of u's calls: Transport, or the
// lean client in front of it (see rt).
func (u *Upstream) roundTripper() http.RoundTripper {
	u.rtOnce.Do(func() {
		t := u.Transport
		if t == nil {
			t = defaultUpstreamTransport()
		}
		u.rt = t
		if ht, ok := t.(*http.Transport); ok {
			u.rt = &h1client.Client{Fallback: ht}
		}
	})
	return u.rt
}

// CloseIdleConnections closes the connections to the service that u
// keeps alive, its Transport's too.
func (u *Upstream) CloseIdleConnections() {
	if c, ok := u.roundTripper().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// hop is where [forward] sends a call's request: a local service
// (Upstream), or a host outside the mesh (Egress).
type hop struct {
	// base is the URL the request goes to: scheme http, host:port, and
	// a base path its path is appended to.
	base      *url.URL
	transport http.RoundTripper
	lim       wire.Limits
	// caller, when set, is sent as Mesh-Caller (to a local service only:
	// a host outside the mesh is told nothing of it).
	caller string
	// who names the other side in errors: "local service".
	who       string
	onRefused func(error)
}

// forward makes c's request to h and returns its answer as a reply
// (Upstream.ServeCall says how).
func forward(ctx context.Context, c *pipeline.Call, h hop) (*pipeline.Reply, error) {
	lim := h.lim
	// The dispatch parsed the subject and set the deadline already.
	r, err := decodeCall(ctx, c)
	if err != nil {
		return nil, err
	}
	upgrade := httpwire.Upgrade(r.Header) != ""
	if upgrade {
		if !c.Body.Streamed() {
			return nil, wire.Errorf(wire.KindBadRequest, "a protocol upgrade (%s) needs a streamed body", httpwire.HeaderUpgrade)
		}
		// The call's body is the connection's, once switched: the
		// request itself has none.
		r.Body, r.ContentLength = http.NoBody, 0
		r.Header.Del("Content-Length")
	}
	r.URL.Scheme = "http"
	if h.base.Scheme == "https" {
		r.URL.Scheme = "https"
	}
	r.URL.Host = h.base.Host
	if base := strings.TrimSuffix(h.base.EscapedPath(), "/"); base != "" {
		r.URL.RawPath = base + r.URL.EscapedPath()
		r.URL.Path = strings.TrimSuffix(h.base.Path, "/") + r.URL.Path
	}
	r.RequestURI = ""
	if r.Host == "" {
		// A message without Mesh-Host (a raw NATS client's): the service
		// sees its own name, never its own address, which Go's client
		// would otherwise send.
		r.Host = c.Service
	}
	if len(r.Trailer) > 0 || (r.Trailer == nil && r.ContentLength < 0 && !upgrade) {
		// Trailers need a chunked body: sent sized, Go's client drops
		// them silently. A body of unknown length is chunked already,
		// and may end with trailers it did not declare: Go's client
		// sends those that are in the map at the body's end.
		if r.Trailer == nil {
			r.Trailer = make(http.Header)
		}
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		if r.Body == http.NoBody {
			r.Body = io.NopCloser(strings.NewReader(""))
		}
		r.Header.Del("Content-Length")
	}
	if h.caller != "" {
		setCallerHeader(r.Header, h.caller)
	}
	var sent *callerBody
	if c.Body.Streamed() && !upgrade && r.Body != nil && r.Body != http.NoBody {
		sent = &callerBody{ReadCloser: r.Body, declared: r.ContentLength}
		r.Body = sent
	}
	resp, err := h.transport.RoundTrip(r)
	if err != nil {
		if e := sent.fault(); e != nil {
			// The caller's body failed, not the service: the caller's
			// fault is no failure of this instance (passive health, the
			// breaker and the metrics count none).
			return nil, e
		}
		e := upstreamError(r.Context(), h, err)
		if e.Kind == wire.KindUpstreamRefused && h.onRefused != nil {
			h.onRefused(err)
		}
		return nil, e
	}
	if upgrade && resp.StatusCode == http.StatusSwitchingProtocols {
		return switched(ctx, c, resp, lim)
	}
	if resp.StatusCode < 200 {
		// A 101 to a request that asked for none, or another 1xx that
		// Go's client passed on: no final answer.
		resp.Body.Close()
		return nil, wire.Errorf(wire.KindUpstream, "the %s answered status %d", h.who, resp.StatusCode)
	}
	if (resp.ContentLength >= 0 && resp.ContentLength <= wholeLimit(lim)) || r.Method == http.MethodHead {
		m, err := httpwire.EncodeResponse(resp, lim)
		if err != nil {
			return nil, wire.ResponseError(err)
		}
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, m), nil
	}
	return answerStream(resp, lim)
}

// decodeCall is the request a call makes, its body the call's whole one,
// or its stream as it arrives, under ctx (whose trailer fills the
// request's Trailer at its end).
func decodeCall(ctx context.Context, c *pipeline.Call) (*http.Request, error) {
	if !c.Body.Streamed() {
		return httpwire.DecodeCall(ctx, c.Header, c.Body.Bytes, c.Op)
	}
	body := &httpstream.Body{Ctx: ctx, S: c.Body.Stream}
	r, err := httpwire.DecodeStreamCall(ctx, c.Header, body, c.Op)
	if err != nil {
		return nil, err
	}
	body.OnEOF = func(t nats.Header) error {
		tr := httpwire.ReadTrailer(t, false)
		if err := httpwire.CheckTrailer(r.Header, tr); err != nil {
			return err // the caller's trailer: its fault, the call's failure
		}
		if len(tr) > 0 && r.Trailer != nil {
			fillTrailer(r.Trailer, tr)
		}
		return nil
	}
	return r, nil
}

// answerStream is the streamed reply of resp: its head now, its body as
// the service writes it, its trailers at its end. Closing the reply's
// stream closes resp's body (the call given up: net/http ends the
// request).
func answerStream(resp *http.Response, lim wire.Limits) (*pipeline.Reply, error) {
	head, err := httpwire.ResponseHead(resp.StatusCode, resp.Header, resp.ContentLength, resp.Trailer, lim)
	if err != nil {
		resp.Body.Close()
		return nil, wire.ResponseError(err)
	}
	return pipeline.NewStreamReply(wire.ProtoHTTP, head.Header, &httpstream.Source{R: resp.Body, Fail: answerFailure,
		TrailerOf: func() nats.Header { return httpwire.TrailerHeader(resp.Trailer) }}), nil
}

// switched is the reply of a service that switched protocols (resp, a
// 101 whose Body is the connection): a stream of the service's bytes,
// while the call's body is written to the connection; the end of the
// reply's stream closes the connection.
func switched(ctx context.Context, c *pipeline.Call, resp *http.Response, lim wire.Limits) (*pipeline.Reply, error) {
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, wire.Errorf(wire.KindInternal, "the service's 101 came without its connection")
	}
	head, err := httpwire.ResponseHead(resp.StatusCode, resp.Header, -1, nil, lim)
	if err != nil {
		rwc.Close()
		return nil, wire.ResponseError(err)
	}
	go httpstream.Pump(ctx, c.Body.Stream, rwc)
	return pipeline.NewStreamReply(wire.ProtoHTTP, head.Header, &httpstream.Source{R: rwc, Fail: answerFailure}), nil
}

// upstreamError classifies a failed call to h (the local service, an
// external host): the caller's deadline passing is a timeout; a dial that
// failed means it took nothing; anything else (a TLS handshake that
// failed: a CA that does not verify the service, a client certificate it
// wants) means it could not answer, and the message names its URL.
func upstreamError(ctx context.Context, h hop, err error) *wire.Error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &wire.Error{Kind: wire.KindTimeout, Message: h.who + " did not answer in time", Err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &wire.Error{Kind: wire.KindUpstreamRefused, Message: h.who + " refused the connection: " + err.Error(), Err: err}
	}
	return &wire.Error{Kind: wire.KindUpstream, Message: h.who + " " + h.base.Redacted() + ": " + err.Error(), Err: err}
}

// callerBody is a streamed request body on its way to the service, which
// tells a failure of the caller's body (it ended short of its declared
// length, or its stream failed) from one of the service.
type callerBody struct {
	io.ReadCloser
	declared int64 // Content-Length, or -1

	mu   sync.Mutex
	read int64
	err  error // the body's own failure
}

func (b *callerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += int64(n)
	switch {
	case err == io.EOF && b.declared >= 0 && b.read < b.declared:
		b.err = wire.Errorf(wire.KindBadRequest, "the request body ended after %d of its %d bytes (Content-Length)", b.read, b.declared)
		return n, b.err
	case err != nil && err != io.EOF:
		b.err = err
	}
	return n, err
}

// fault is the caller's failure that ended the body, as a mesh error;
// nil when it did not fail (or b is nil).
func (b *callerBody) fault() *wire.Error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		return nil
	}
	e := wire.FromError(b.err)
	if e.Kind == wire.KindInternal || e.Kind == wire.KindUpstream {
		e = &wire.Error{Kind: wire.KindBadRequest, Message: "the request body failed: " + e.Message, Err: b.err}
	}
	return e
}
