package meshhttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// recording is a Sender that records the calls it is given and answers
// each with answer's reply, or, when answer is nil, 200 "ok".
type recording struct {
	mu     sync.Mutex
	calls  []*pipeline.Call
	ctxs   []context.Context
	answer func(c *pipeline.Call) (*pipeline.Reply, error)
}

func (s *recording) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	if s.answer != nil {
		return s.answer(c)
	}
	return reply(200, http.Header{"X-Svc": {"yes"}}, "ok"), nil
}

func (s *recording) last(t *testing.T) (*pipeline.Call, context.Context) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		t.Fatal("no call was sent")
	}
	return s.calls[len(s.calls)-1], s.ctxs[len(s.ctxs)-1]
}

func (s *recording) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// reply is the service's HTTP answer as a reply.
func reply(status int, h http.Header, body string) *pipeline.Reply {
	m, err := httpwire.ResponseMsg(status, h, []byte(body), nil, wire.Limits{})
	if err != nil {
		panic(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoHTTP, m)
}

// rawReply is a reply with the raw status header status, as a forged
// answer carries it.
func rawReply(status string) *pipeline.Reply {
	return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {status}, "Upgrade": {"evil"}}})
}

// serve runs r through p and returns the recorded answer.
func serve(p *Proxy, r *http.Request) (*httptest.ResponseRecorder, Result) {
	w := httptest.NewRecorder()
	res := p.Forward(w, r)
	return w, res
}

func wantMeshError(t *testing.T, w *httptest.ResponseRecorder, status int, kind wire.Kind) {
	t.Helper()
	if w.Code != status || w.Header().Get(wire.HeaderError) != string(kind) {
		t.Fatalf("answered %d %q (%s), want %d %s", w.Code, w.Header().Get(wire.HeaderError), strings.TrimSpace(w.Body.String()), status, kind)
	}
}

// TestProxyDefaultResolve: without a Resolve hook, a Proxy sends to the
// host the client addressed (the absolute-form target before Host), as
// the agent's proxy always has, from Caller.
func TestProxyDefaultResolve(t *testing.T) {
	s := &recording{}
	p := &Proxy{Sender: s, Caller: "web", Domains: []string{"svc.local"}}
	tests := []struct {
		name, target, host string
		dest               string
		status             int
		kind               wire.Kind
	}{
		{"Host header", "/items?a=1", "orders", "orders", 200, ""},
		{"subset", "/items", "v2.orders:8080", "orders@v2", 200, ""},
		{"mesh domain", "/items", "orders.mesh", "orders", 200, ""},
		{"configured domain", "/items", "v2.orders.svc.local", "orders@v2", 200, ""},
		{"absolute-form wins over Host", "http://pay/items", "orders", "pay", 200, ""},
		{"not a service name", "/items", "Bad_Name", "", 404, wire.KindNoRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Host = tt.host
			w, res := serve(p, r)
			if tt.kind != "" {
				wantMeshError(t, w, tt.status, tt.kind)
				if res.Err == nil || res.Status != tt.status || res.Dest.Dest() != "" {
					t.Errorf("result %+v", res)
				}
				return
			}
			c, _ := s.last(t)
			if w.Code != 200 || w.Body.String() != "ok" || w.Header().Get("X-Svc") != "yes" {
				t.Fatalf("answered %d %q %v", w.Code, w.Body, w.Header())
			}
			if c.Dest() != tt.dest || c.Caller != "web" || c.Proto != wire.ProtoHTTP || c.Op != "GET" || c.Path != "/items" {
				t.Errorf("sent %s from %s: %s %s %s", c.Dest(), c.Caller, c.Proto, c.Op, c.Path)
			}
			if res.Err != nil || res.Status != 200 || res.Dest.Dest() != tt.dest || res.Dest.Caller != "web" {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// TestProxyHooks: Resolve, CallerOf, Rewrite and ErrorHandler each
// replace their default, as documented on the fields.
func TestProxyHooks(t *testing.T) {
	t.Run("Resolve", func(t *testing.T) {
		s := &recording{}
		p := &Proxy{Sender: s, Caller: "web", Resolve: func(r *http.Request) (pipeline.Call, error) {
			// Its caller and routing fields other than the destination
			// count for nothing.
			return pipeline.Call{Subject: "svc.time", Caller: "forged", Op: "POST"}, nil
		}}
		w, _ := serve(p, httptest.NewRequest("GET", "http://orders/x", nil))
		c, _ := s.last(t)
		if w.Code != 200 || c.Subject != "svc.time" || c.Service != "" || c.Caller != "web" || c.Op != "GET" {
			t.Fatalf("answered %d, sent %+v", w.Code, c)
		}
	})
	t.Run("Resolve fails", func(t *testing.T) {
		s := &recording{}
		p := &Proxy{Sender: s, Resolve: func(*http.Request) (pipeline.Call, error) { return pipeline.Call{}, errors.New("nowhere") }}
		w, _ := serve(p, httptest.NewRequest("GET", "/", nil))
		wantMeshError(t, w, 404, wire.KindNoRoute)
		p.Resolve = func(*http.Request) (pipeline.Call, error) {
			return pipeline.Call{}, wire.Errorf(wire.KindBadRequest, "bad")
		}
		w, _ = serve(p, httptest.NewRequest("GET", "/", nil))
		wantMeshError(t, w, 400, wire.KindBadRequest)
		if s.sent() != 0 {
			t.Error("a request that resolved nowhere was sent")
		}
	})
	t.Run("CallerOf", func(t *testing.T) {
		s := &recording{}
		p := &Proxy{Sender: s, Caller: "web", CallerOf: func(r *http.Request) (string, error) {
			if r.RemoteAddr == "10.0.0.9:1234" {
				return "", errors.New("not a client of this node")
			}
			return "shop", nil
		}}
		w, res := serve(p, httptest.NewRequest("GET", "http://orders/", nil))
		if c, _ := s.last(t); w.Code != 200 || c.Caller != "shop" || res.Dest.Caller != "shop" {
			t.Fatalf("answered %d, caller %q", w.Code, c.Caller)
		}
		r := httptest.NewRequest("GET", "http://orders/", nil)
		r.RemoteAddr = "10.0.0.9:1234"
		w, _ = serve(p, r)
		wantMeshError(t, w, 403, wire.KindForbidden)
	})
	t.Run("Rewrite", func(t *testing.T) {
		s := &recording{}
		var in *http.Request
		p := &Proxy{Sender: s, Caller: "web", Limits: func() wire.Limits { return wire.Limits{MaxHeaders: 3} },
			Rewrite: func(pr *ProxyRequest) error {
				if pr.Dest().Service != "orders" || pr.Dest().Caller != "web" || pr.In != in || pr.Out == pr.In {
					t.Errorf("rewrite given dest %+v, in %p (want %p), out %p", pr.Dest(), pr.In, in, pr.Out)
				}
				// Three headers the client sent, one the hook adds: the
				// hook raises the bound by what it adds.
				pr.Limits.MaxHeaders = pr.Limits.HeadersLimit() + 1
				pr.Out.Header = pr.In.Header.Clone()
				pr.Out.Header.Set("X-Added", "1")
				pr.Out.Host = "orders"
				return nil
			}}
		in = httptest.NewRequest("GET", "http://v1.orders/x", nil)
		in.Header = http.Header{"A": {"1"}, "B": {"2"}}
		w, _ := serve(p, in)
		c, _ := s.last(t)
		if w.Code != 200 || c.Header.Get("X-Added") != "1" || c.Header.Get(wire.HeaderHost) != "orders" {
			t.Fatalf("answered %d %s, sent header %v", w.Code, w.Body, c.Header)
		}
		if in.Header.Get("X-Added") != "" || in.Host != "v1.orders" {
			t.Errorf("the client's request changed: %v %q", in.Header, in.Host)
		}
		p.Rewrite = func(*ProxyRequest) error { return wire.Errorf(wire.KindNoRoute, "no prefix") }
		w, _ = serve(p, httptest.NewRequest("GET", "http://orders/x", nil))
		wantMeshError(t, w, 404, wire.KindNoRoute)
	})
	t.Run("ErrorHandler", func(t *testing.T) {
		var got error
		p := &Proxy{Sender: &recording{}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			w.WriteHeader(418)
		}}
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = "Not a name"
		w, res := serve(p, r)
		var e *wire.Error
		if w.Code != 418 || !errors.As(got, &e) || e.Kind != wire.KindNoRoute || res.Status != 404 || res.Err != got {
			t.Fatalf("answered %d, handler given %v, result %+v", w.Code, got, res)
		}
	})
}

// TestProxyAnswers: what a Proxy answers whatever its hooks: only a final
// status, one answer to a panic, a refusal of CONNECT, the client's
// deadline, the connection closed after a chunked request, HEAD's
// Content-Length only when it tells something.
func TestProxyAnswers(t *testing.T) {
	t.Run("only a final status", func(t *testing.T) {
		for _, status := range []string{"101", "103", "999"} {
			p := &Proxy{Sender: &recording{answer: func(*pipeline.Call) (*pipeline.Reply, error) { return rawReply(status), nil }}}
			w, res := serve(p, httptest.NewRequest("GET", "http://orders/", nil))
			wantMeshError(t, w, 502, wire.KindUpstream)
			if w.Header().Get("Upgrade") != "" || res.Status != 502 {
				t.Errorf("status %s: header %v, result %+v", status, w.Header(), res)
			}
		}
	})
	t.Run("a panic", func(t *testing.T) {
		var logged bytes.Buffer
		p := &Proxy{Sender: pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { panic("boom") }),
			ErrorLog: slog.New(slog.NewTextHandler(&logged, nil))}
		w, res := serve(p, httptest.NewRequest("GET", "http://orders/", nil))
		wantMeshError(t, w, 500, wire.KindInternal)
		if res.Status != 500 || !strings.Contains(logged.String(), "boom") {
			t.Errorf("result %+v, logged %q", res, logged.String())
		}
		p.Sender = pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { panic(http.ErrAbortHandler) })
		func() {
			defer func() {
				if v := recover(); v != http.ErrAbortHandler {
					t.Errorf("recovered %v, want http.ErrAbortHandler passed on", v)
				}
			}()
			serve(p, httptest.NewRequest("GET", "http://orders/", nil))
		}()
	})
	t.Run("CONNECT", func(t *testing.T) {
		s := &recording{}
		w, _ := serve(&Proxy{Sender: s}, httptest.NewRequest("CONNECT", "orders:443", nil))
		wantMeshError(t, w, 400, wire.KindBadRequest)
		if s.sent() != 0 {
			t.Error("CONNECT was sent")
		}
	})
	t.Run("no Sender", func(t *testing.T) {
		w, _ := serve(&Proxy{}, httptest.NewRequest("GET", "http://orders/", nil))
		wantMeshError(t, w, 500, wire.KindInternal)
	})
	t.Run("Mesh-Timeout", func(t *testing.T) {
		s := &recording{}
		p := &Proxy{Sender: s}
		r := httptest.NewRequest("GET", "http://orders/", nil)
		r.Header.Set(wire.HeaderTimeout, "250ms")
		serve(p, r)
		_, ctx := s.last(t)
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > 250*time.Millisecond {
			t.Errorf("deadline %v (%v), want within 250ms", d, ok)
		}
		r.Header.Set(wire.HeaderTimeout, "soon")
		w, _ := serve(p, r)
		wantMeshError(t, w, 400, wire.KindBadRequest)
	})
	t.Run("chunked request", func(t *testing.T) {
		r := httptest.NewRequest("POST", "http://orders/", strings.NewReader("x"))
		r.TransferEncoding = []string{"chunked"}
		w, _ := serve(&Proxy{Sender: &recording{}}, r)
		if w.Code != 200 || w.Header().Get("Connection") != "close" {
			t.Fatalf("answered %d, Connection %q", w.Code, w.Header().Get("Connection"))
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		told := pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderContentLength: {"42"}}})
		for _, tt := range []struct {
			name  string
			reply *pipeline.Reply
			want  string
		}{
			{"empty", reply(200, nil, ""), ""},
			{"length told", told, "42"},
			{"a body sent anyway", reply(200, nil, "abc"), "3"},
		} {
			p := &Proxy{Sender: &recording{answer: func(*pipeline.Call) (*pipeline.Reply, error) { return tt.reply, nil }}}
			w, _ := serve(p, httptest.NewRequest("HEAD", "http://orders/", nil))
			if w.Code != 200 || w.Header().Get("Content-Length") != tt.want {
				t.Errorf("%s: %d, Content-Length %q, want %q", tt.name, w.Code, w.Header().Get("Content-Length"), tt.want)
			}
		}
	})
}

// TestTransport: the in-process client side takes the Proxy's steps and
// answers a mesh failure as a response, as the proxy writes it.
func TestTransport(t *testing.T) {
	s := &recording{}
	tr := &Transport{Sender: s, Caller: "web"}
	client := &http.Client{Transport: tr}
	resp, err := client.Post("http://v2.orders/items", "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c, _ := s.last(t)
	if resp.StatusCode != 200 || string(body) != "ok" || resp.Request == nil || c.Dest() != "orders@v2" || c.Caller != "web" || string(c.Body.Bytes) != "hi" {
		t.Fatalf("got %d %q, sent %s from %s with %q", resp.StatusCode, body, c.Dest(), c.Caller, c.Body.Bytes)
	}

	failures := []struct {
		name   string
		req    func() *http.Request
		answer func(*pipeline.Call) (*pipeline.Reply, error)
		status int
		kind   wire.Kind
	}{
		{"not a service", func() *http.Request { return httptest.NewRequest("GET", "http://Not_A_Name/", nil) }, nil, 404, wire.KindNoRoute},
		{"mesh failure", func() *http.Request { return httptest.NewRequest("GET", "http://orders/", nil) },
			func(*pipeline.Call) (*pipeline.Reply, error) { return nil, wire.Errorf(wire.KindNoResponders, "none") }, 503, wire.KindNoResponders},
		{"forged 101", func() *http.Request { return httptest.NewRequest("GET", "http://orders/", nil) },
			func(*pipeline.Call) (*pipeline.Reply, error) { return rawReply("101"), nil }, 502, wire.KindUpstream},
		{"CONNECT", func() *http.Request { return httptest.NewRequest("CONNECT", "http://orders:443", nil) }, nil, 400, wire.KindBadRequest},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			s.answer = tt.answer
			r := tt.req()
			r.RequestURI = ""
			resp, err := tr.RoundTrip(r)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || resp.Header.Get(wire.HeaderError) != string(tt.kind) || resp.Request != r {
				t.Fatalf("got %d %q, want %d %s", resp.StatusCode, resp.Header.Get(wire.HeaderError), tt.status, tt.kind)
			}
		})
	}
	if _, err := tr.RoundTrip(&http.Request{Method: "GET", Body: io.NopCloser(strings.NewReader(""))}); err == nil {
		t.Error("a request without a URL: no error")
	}
}

type declares map[string]bool

func (d declares) Declares(s string) bool { return d[s] }

// TestProxyEgressHook: with Egress set, a host that is no mesh service
// (wire.ReadHost against Services) goes to Egress, CONNECT included, and
// a mesh service's goes over the mesh; CONNECT to a mesh service is
// refused, and an Egress that panics is answered internal.
func TestProxyEgressHook(t *testing.T) {
	s := &recording{}
	var out []string
	p := &Proxy{Sender: s, Caller: "web", ErrorLog: slog.New(slog.DiscardHandler),
		Services: func() (wire.Services, bool) { return declares{"orders": true}, false },
		Egress: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Host == "panic.example" {
				panic("egress")
			}
			out = append(out, r.Method+" "+r.Host)
			w.WriteHeader(299)
		})}
	for _, tt := range []struct {
		method, target, dest, egress string
	}{
		{"GET", "http://orders/x", "orders", ""},
		{"GET", "http://v2.orders/x", "orders@v2", ""},
		{"GET", "http://payments/x", "payments", ""}, // bare, the list is not complete
		{"GET", "http://example.com/x", "", "GET example.com"},
		{"GET", "http://127.0.0.1:8080/x", "", "GET 127.0.0.1:8080"},
		{"CONNECT", "example.com:443", "", "CONNECT example.com:443"},
	} {
		out, s.calls = nil, nil
		r := httptest.NewRequest(tt.method, tt.target, nil)
		w, _ := serve(p, r)
		switch {
		case tt.egress != "":
			if w.Code != 299 || len(out) != 1 || out[0] != tt.egress || s.sent() != 0 {
				t.Errorf("%s %s: %d, egress saw %v, %d sent over the mesh; want Egress's answer to %q", tt.method, tt.target, w.Code, out, s.sent(), tt.egress)
			}
		default:
			if c, _ := s.last(t); w.Code != 200 || c.Dest() != tt.dest || len(out) != 0 {
				t.Errorf("%s %s: %d to %s, egress saw %v; want %s over the mesh", tt.method, tt.target, w.Code, c.Dest(), out, tt.dest)
			}
		}
	}
	w, _ := serve(p, httptest.NewRequest("CONNECT", "orders:443", nil))
	wantMeshError(t, w, 400, wire.KindBadRequest)
	w, _ = serve(p, httptest.NewRequest("GET", "http://panic.example/", nil))
	wantMeshError(t, w, 500, wire.KindInternal)
}
