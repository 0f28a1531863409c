package meshhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/httpguard"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// direct is a Sender that serves each call with h in process, as the
// stream protocol (issue 18) carries it between two agents: streams pass
// as they are, both ways, full duplex; the callee's context is cancelled
// when the caller gives up before the head (ctx), else when the reply's
// stream ends; the callee's reply stream is closed at its end. It stands
// for the wire in the adapters' tests until the protocol lands.
func direct(h pipeline.Handler) pipeline.SendFunc {
	return func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		hctx, cancel := context.WithCancel(pipeline.WithCaller(context.WithoutCancel(ctx), c.Caller))
		stop := context.AfterFunc(ctx, cancel)
		reply, err := h.ServeCall(hctx, c.Clone())
		stop()
		if err != nil {
			cancel()
			return nil, wire.FromError(err)
		}
		if !reply.Streamed() {
			cancel()
			if e := wire.ReplyError(reply.Header); e != nil {
				return nil, e
			}
			return reply, nil
		}
		return pipeline.NewStreamReply(c.Proto, reply.Header, &calleeStream{Stream: reply.Body.Stream, cancel: cancel}), nil
	}
}

// calleeStream is a callee's reply stream as its caller reads it: at its
// end, or when the caller closes it, the callee's stream is closed and
// its context cancelled.
type calleeStream struct {
	pipeline.Stream
	cancel context.CancelFunc
	once   sync.Once
}

func (s *calleeStream) Next(ctx context.Context) ([]byte, error) {
	b, err := s.Stream.Next(ctx)
	if err != nil {
		s.end()
		if !errors.Is(err, io.EOF) {
			err = wire.FromError(err)
		}
	}
	return b, err
}

func (s *calleeStream) Close() error {
	s.end()
	return nil
}

func (s *calleeStream) end() {
	s.once.Do(func() {
		s.Stream.Close()
		s.cancel()
	})
}

// Trailer is read after Next's io.EOF, when end has closed the callee's
// stream: a closed stream keeps its trailer.
func (s *calleeStream) Trailer() nats.Header { return s.Stream.Trailer() }

// meshPair is a service (h, a real HTTP server) behind an Upstream, and
// a Proxy in front of it, served by a real HTTP server with the
// listeners' guard (internal/httpguard), sending directly to the
// Upstream: every destination is "orders".
type meshPair struct {
	service  *httptest.Server
	upstream *Upstream
	proxy    *Proxy
	url      string // the proxy's
}

func newMeshPair(t *testing.T, h http.Handler, kind string) *meshPair {
	t.Helper()
	mp := &meshPair{}
	var callee pipeline.Handler
	switch kind {
	case "upstream":
		mp.service = httptest.NewServer(h)
		t.Cleanup(mp.service.Close)
		u, _ := url.Parse(mp.service.URL)
		tr := NewUpstreamTransport()
		t.Cleanup(tr.CloseIdleConnections)
		mp.upstream = &Upstream{Base: u, Transport: tr}
		callee = mp.upstream
	case "handler":
		callee = &Handler{Handler: h}
	default:
		t.Fatalf("kind %q", kind)
	}
	mp.proxy = &Proxy{Sender: direct(callee), Caller: "web",
		Resolve: func(*http.Request) (pipeline.Call, error) { return pipeline.Call{Service: "orders"}, nil }}
	mp.url = serveGuarded(t, mp.proxy)
	return mp
}

// serveGuarded serves h as the mesh's listeners serve a Proxy, behind
// internal/httpguard, and returns its URL.
func serveGuarded(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpguard.Handler(h, httpguard.Options{}), ConnContext: httpguard.ConnContext}
	go srv.Serve(httpguard.Listen(l))
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// kinds are the local services a test runs against: an HTTP service on
// the network, and an in-process handler.
var kinds = []string{"upstream", "handler"}
