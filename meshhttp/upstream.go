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
	// Base is the service's URL: scheme http, host:port, and an optional
	// base path. Required.
	Base *url.URL
	// Transport makes the requests. Default (nil): one transport shared by
	// every Upstream without one, made by [NewUpstreamTransport] (no
	// proxy, no compression of its own, connections kept alive), never
	// http.DefaultTransport, which would add an Accept-Encoding the client
	// never sent.
	Transport http.RoundTripper
	// Limits, read per call, bound the answer; nil means the defaults.
	Limits pipeline.Limits
	// OnRefused, when set, is called after a call found the service not
	// accepting connections.
	OnRefused func(error)
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
func (u *Upstream) ServeCall(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	lim := u.Limits.Now()
	// The dispatch parsed the subject and set the deadline already.
	r, err := httpwire.DecodeCall(ctx, c.Header, c.Body.Bytes, c.Op)
	if err != nil {
		return nil, err
	}
	r.URL.Scheme = "http"
	r.URL.Host = u.Base.Host
	if base := strings.TrimSuffix(u.Base.EscapedPath(), "/"); base != "" {
		r.URL.RawPath = base + r.URL.EscapedPath()
		r.URL.Path = strings.TrimSuffix(u.Base.Path, "/") + r.URL.Path
	}
	r.RequestURI = ""
	if r.Host == "" {
		// A message without Mesh-Host (a raw NATS client's): the service
		// sees its own name, never its own address, which Go's client
		// would otherwise send.
		r.Host = c.Service
	}
	if len(r.Trailer) > 0 {
		// Trailers need a chunked body: sent sized, Go's client drops
		// them silently.
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		if r.Body == http.NoBody {
			r.Body = io.NopCloser(strings.NewReader(""))
		}
		r.Header.Del("Content-Length")
	}
	setCallerHeader(r.Header, c.Caller)
	t := u.Transport
	if t == nil {
		t = defaultUpstreamTransport()
	}
	resp, err := t.RoundTrip(r)
	if err != nil {
		e := upstreamError(r.Context(), err)
		if e.Kind == wire.KindUpstreamRefused && u.OnRefused != nil {
			u.OnRefused(err)
		}
		return nil, e
	}
	m, err := httpwire.EncodeResponse(resp, lim)
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoHTTP, m), nil
}

// upstreamError classifies a failed call to the local service: the
// caller's deadline passing is a timeout; a dial that failed means the
// service took nothing; anything else means it could not answer.
func upstreamError(ctx context.Context, err error) *wire.Error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &wire.Error{Kind: wire.KindTimeout, Message: "local service did not answer in time", Err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &wire.Error{Kind: wire.KindUpstreamRefused, Message: "local service refused the connection: " + err.Error(), Err: err}
	}
	return &wire.Error{Kind: wire.KindUpstream, Message: err.Error(), Err: err}
}
