package meshhttp

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// Egress is the end of the path out of the mesh (package egress): a
// pipeline.Sender that sends each call's request straight to the host
// outside the mesh that it names (its Host, Mesh-Host; port 80 when it
// names none), as [Upstream] sends a call to its local service, with its
// body streamed both ways, its trailers and a protocol upgrade, but
// telling the host nothing of the mesh (no Mesh-Caller). A connection the
// host refuses (or a dial that fails: an unknown name) is
// upstream-refused, nothing having run; a host that does not answer
// within the call's deadline is a timeout; anything else
// upstream-unavailable. The call is never sent over NATS.
type Egress struct {
	// Transport makes the requests. Default (nil): one transport shared
	// by every Egress without one, [NewEgressTransport](nil).
	Transport http.RoundTripper
	// Limits, read per call, bound the answer; nil means the defaults.
	Limits pipeline.Limits
}

var _ pipeline.Sender = (*Egress)(nil)

// NewEgressTransport is the transport of an [Egress]: dial (nil: a
// net.Dialer's, 5 s to connect) opens its connections; no proxy (the
// agent's own HTTP_PROXY, which may name the agent, must not apply), no
// compression of its own (bodies pass as the host wrote them).
func NewEgressTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	t := NewUpstreamTransport()
	t.MaxIdleConnsPerHost = 64
	if dial != nil {
		t.DialContext = dial
	}
	return t
}

// defaultEgressTransport is the Transport of an Egress without one,
// made on first use.
var defaultEgressTransport = sync.OnceValue(func() *http.Transport { return NewEgressTransport(nil) })

// Send implements [pipeline.Sender].
func (e *Egress) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	host := c.Header.Get(wire.HeaderHost)
	addr, err := hostPort(host, "80")
	if err != nil {
		return nil, err
	}
	t := e.Transport
	if t == nil {
		t = defaultEgressTransport()
	}
	return forward(ctx, c, hop{base: &url.URL{Scheme: "http", Host: addr}, transport: t, lim: e.Limits.Now(), who: "the external host " + host})
}

// hostPort is host (a request's Host: NAME, NAME:PORT, [IPv6]:PORT) as an
// address to dial, with port when it names none; a host that is none is
// bad-request.
func hostPort(host, port string) (string, error) {
	if host == "" {
		return "", wire.Errorf(wire.KindBadRequest, "the request names no host")
	}
	u := &url.URL{Host: host}
	name := u.Hostname()
	if name == "" {
		return "", wire.Errorf(wire.KindBadRequest, "%.64q is not host[:port]", host)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(name, port), nil
}
