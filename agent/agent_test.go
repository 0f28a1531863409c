package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// startAgent connects a new agent to b and starts it; it shuts down in
// t.Cleanup. It is internal/agenttest.Start for agent's own tests, which
// cannot import agenttest (it imports agent); keep the two alike.
func startAgent(t *testing.T, b *broker.Broker, cfg Config, before ...func(*Agent)) *Agent {
	t.Helper()
	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix(cfg.Service)))
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	a, err := New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(a)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", cfg.Service, err)
		}
	})
	if err := a.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// listen serves on a loopback port with serve and returns the address.
func listen(t *testing.T, serve func(net.Listener) error) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := serve(l); err != nil {
			t.Logf("serve: %v", err)
		}
	}()
	return l.Addr().String()
}

// echoServer is a real HTTP server that describes each request it gets.
func echoServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Instance", name)
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		if r.URL.Path == "/status/503" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"instance": name,
			"method":   r.Method,
			"uri":      r.RequestURI,
			"host":     r.Host,
			"caller":   r.Header.Get(HeaderCaller),
			"trace":    r.Header.Get("Traceparent"),
			"body":     string(body),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type echo struct {
	Instance, Method, URI, Host, Caller, Trace, Body string
}

func decodeEcho(t *testing.T, resp *http.Response) echo {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

func proxyClient(proxyAddr string) *http.Client {
	u, _ := url.Parse("http://" + proxyAddr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
}

func TestHTTPSidecarToSidecar(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "orders-1")
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeHTTPProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })

	t.Run("proxy form", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://orders/v1/items?id=7&x=%2F", strings.NewReader("hello"))
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set(HeaderCaller, "admin") // a forged identity must not survive
		resp, err := proxyClient(proxy).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Values("X-Multi"); len(got) != 2 {
			t.Errorf("X-Multi = %v, want both values", got)
		}
		e := decodeEcho(t, resp)
		want := echo{Instance: "orders-1", Method: "POST", URI: "/v1/items?id=7&x=%2F", Host: "orders", Caller: "web",
			Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Body: "hello"}
		if e != want {
			t.Errorf("upstream saw %+v, want %+v", e, want)
		}
	})
	t.Run("host header", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+proxy+"/v1/items", nil)
		req.Host = "orders:8080"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if e := decodeEcho(t, resp); e.URI != "/v1/items" || e.Caller != "web" {
			t.Errorf("upstream saw %+v", e)
		}
	})
	t.Run("bind port", func(t *testing.T) {
		resp, err := http.Get("http://" + bind + "/bound")
		if err != nil {
			t.Fatal(err)
		}
		if e := decodeEcho(t, resp); e.URI != "/bound" || e.Instance != "orders-1" || e.Host != "orders" {
			t.Errorf("upstream saw %+v", e)
		}
	})
	t.Run("service's own 503 is not no-responders", func(t *testing.T) {
		resp, err := proxyClient(proxy).Get("http://orders/status/503")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != "" || resp.Header.Get("X-Instance") != "orders-1" {
			t.Errorf("got %d %v, want the service's own 503", resp.StatusCode, resp.Header)
		}
	})
	t.Run("no host name", func(t *testing.T) {
		// A host that names no host at all; one that does but is no
		// service leaves the mesh (package egress).
		resp, err := proxyClient(proxy).Get("http://not..a-host/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Header.Get(wire.HeaderError) != string(wire.KindNoRoute) {
			t.Errorf("got %d %v, want 404 no-route", resp.StatusCode, resp.Header)
		}
	})
}

func TestNoInstanceFailsFast(t *testing.T) {
	b := meshtest.Broker(t)
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeHTTPProxy)
	start := time.Now()
	resp, err := proxyClient(proxy).Get("http://orders/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != string(wire.KindNoResponders) {
		t.Fatalf("got %d %v, want 503 no-responders", resp.StatusCode, resp.Header)
	}
	// Not a timing assertion of speed, only of kind: a timeout would take
	// the full 30s default.
	if took > 5*time.Second {
		t.Errorf("no-responders took %v: it waited for a timeout", took)
	}
}

func TestInProcessAndSidecarMix(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "orders-sidecar")
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL})
	// An in-process service, served with no local hop.
	startAgent(t, b, Config{Service: "users"}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			caller, _ := CallerFrom(r.Context())
			fmt.Fprintf(w, "users saw %s %s from %s/%s", r.Method, r.URL.RequestURI(), caller, r.Header.Get(HeaderCaller))
		}))
	})
	web := startAgent(t, b, Config{Service: "web"})

	t.Run("in-process client to sidecar server", func(t *testing.T) {
		c := &http.Client{Transport: web.Transport()}
		resp, err := c.Get("http://orders/x?y=1")
		if err != nil {
			t.Fatal(err)
		}
		if e := decodeEcho(t, resp); e.URI != "/x?y=1" || e.Caller != "web" {
			t.Errorf("upstream saw %+v", e)
		}
	})
	t.Run("sidecar client to in-process server", func(t *testing.T) {
		proxy := listen(t, web.ServeHTTPProxy)
		resp, err := proxyClient(proxy).Get("http://users/u/1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "users saw GET /u/1 from web/web"; string(body) != want {
			t.Errorf("got %q, want %q", body, want)
		}
	})
	t.Run("in-process no responders is a response", func(t *testing.T) {
		c := &http.Client{Transport: web.Transport()}
		resp, err := c.Get("http://nobody/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != "no-responders" {
			t.Errorf("got %d %v", resp.StatusCode, resp.Header)
		}
	})
}

// countInstances sends n calls and counts the answers per instance.
func countInstances(t *testing.T, c *http.Client, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		resp, err := c.Get("http://orders/")
		if err != nil {
			t.Fatal(err)
		}
		seen[decodeEcho(t, resp).Instance]++
	}
	return seen
}

func TestLoadSharingAndHealth(t *testing.T) {
	b := meshtest.Broker(t)
	up1 := echoServer(t, "one")
	var sick atomic.Bool
	up2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if sick.Load() {
				http.Error(w, "sick", 500)
			}
			return
		}
		json.NewEncoder(w).Encode(echo{Instance: "two"})
	}))
	t.Cleanup(up2.Close)
	hc := HealthConfig{Path: "/healthz", Interval: 50 * time.Millisecond, FailThreshold: 2, PassThreshold: 2}
	startAgent(t, b, Config{Service: "orders", Upstream: up1.URL, Health: hc})
	two := startAgent(t, b, Config{Service: "orders", Upstream: up2.URL, Health: hc})
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport()}

	if seen := countInstances(t, c, 200); seen["one"] == 0 || seen["two"] == 0 {
		t.Fatalf("both instances should take load: %v", seen)
	}
	sick.Store(true)
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if two.Serving() {
			return fmt.Errorf("instance two still serving")
		}
		return nil
	})
	if seen := countInstances(t, c, 100); seen["two"] != 0 {
		t.Fatalf("a withdrawn instance got traffic: %v", seen)
	}
	sick.Store(false)
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !two.Serving() {
			return fmt.Errorf("instance two not serving again")
		}
		return nil
	})
	if seen := countInstances(t, c, 200); seen["two"] == 0 {
		t.Fatalf("a recovered instance got no traffic: %v", seen)
	}
}

func TestStartsServingOnlyWhenHealthy(t *testing.T) {
	b := meshtest.Broker(t)
	// Reserve a port with nothing listening on it yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("orders")))
	a, err := New(nc, Config{Service: "orders", Upstream: "http://" + addr, Logger: quiet,
		Health: HealthConfig{Interval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if err := a.Ready(300 * time.Millisecond); err == nil || a.Serving() {
		t.Fatalf("serving with no service up: Ready = %v", err)
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(l)
	defer srv.Close()
	if err := a.Ready(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	b := meshtest.Broker(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	startAgent(t, b, Config{Service: "slow", MaxConcurrent: 2}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
		}))
	})
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport()}
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get("http://slow/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	<-entered
	<-entered
	resp, err := c.Get("http://slow/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != "overloaded" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third call: %d %v, want 503 overloaded with Retry-After", resp.StatusCode, resp.Header)
	}
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("admitted call got %d", code)
		}
	}
}

func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	b := meshtest.Broker(t)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, "ok")
	})
	var victimServed atomic.Int64
	startAgent(t, b, Config{Service: "orders"}, func(a *Agent) { a.Handle(handler) })
	victim := startAgent(t, b, Config{Service: "orders"}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			victimServed.Add(1)
			handler(w, r)
		}))
	})
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport()}

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://orders/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
					t.Logf("failed call: %d %s", resp.StatusCode, resp.Header.Get(wire.HeaderError))
				}
			}
		}()
	}
	// The instance to stop must be taking its share, or its shutdown
	// proves nothing.
	meshtest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if ok.Load() < 200 || victimServed.Load() < 50 {
			return fmt.Errorf("only %d calls so far, %d by the instance to stop", ok.Load(), victimServed.Load())
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := victim.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	before := ok.Load()
	meshtest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if ok.Load() < before+200 {
			return fmt.Errorf("load stalled after shutdown")
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed across a graceful shutdown", failed.Load(), ok.Load()+failed.Load())
	}
}

func TestDiscoveryWithMicro(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "x")
	startAgent(t, b, Config{Service: "orders", Subset: "v2", Version: "2.1.0", Upstream: up.URL})
	startAgent(t, b, Config{Service: "web"})
	nc := meshtest.Conn(t, b)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$SRV.INFO", inbox, nil); err != nil {
		t.Fatal(err)
	}
	found := map[string]micro.Info{}
	for len(found) < 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(found), err)
		}
		var info micro.Info
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		found[info.Name] = info
	}
	// $SRV.PING.<name> finds the instances of one service, as `nats micro
	// ping` does.
	ping, err := nc.Request("$SRV.PING.orders", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$SRV.PING.orders: %v", err)
	}
	var pong micro.Ping
	if err := json.Unmarshal(ping.Data, &pong); err != nil || pong.Name != "orders" || pong.Version != "2.1.0" {
		t.Errorf("$SRV.PING.orders answered %s (%v)", ping.Data, err)
	}
	o := found["orders"]
	if o.Version != "2.1.0" || o.Metadata["natsmesh.subset"] != "v2" || o.Metadata["natsmesh.serving"] != "true" ||
		len(o.Endpoints) != 2 || o.Endpoints[1].Subject != "mesh.orders.v2.>" || o.Endpoints[1].QueueGroup != "orders.v2" {
		t.Errorf("orders info = %+v", o)
	}
	// An outbound-only agent has no inbound subjects and no empty subset.
	w := found["web"]
	if _, ok := w.Metadata["natsmesh.subset"]; ok || len(w.Endpoints) != 0 || w.Metadata["natsmesh.inbound"] != "none" {
		t.Errorf("web info = %+v", w)
	}
}

func TestConfigValidation(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no service", Config{}},
		{"bad service", Config{Service: "Orders"}},
		{"bad subset", Config{Service: "orders", Subset: "v.2"}},
		{"bad upstream scheme", Config{Service: "orders", Upstream: "ftp://x:1"}},
		{"upstream without host", Config{Service: "orders", Upstream: "http://"}},
		{"bad health path", Config{Service: "orders", Health: HealthConfig{Path: "healthz"}}},
		{"negative timeout", Config{Service: "orders", Timeout: -time.Second}},
		{"version not semver", Config{Service: "orders", Version: "v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(nc, tc.cfg)
			if !errors.Is(err, ErrConfig) || !strings.HasPrefix(err.Error(), "agent:") {
				t.Fatalf("New(%+v) = %v, want a configuration error", tc.cfg, err)
			}
		})
	}
}

// TestRawNATSCaller: a plain NATS client (no Mesh-Timeout, forged identity
// headers in any spelling) gets the agent's default deadline and cannot
// forge its identity.
func TestRawNATSCaller(t *testing.T) {
	b := meshtest.Broker(t)
	var sawDeadline atomic.Bool
	var sawCallers atomic.Value
	startAgent(t, b, Config{Service: "orders", Timeout: 300 * time.Millisecond}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var callers []string
			for k, vs := range r.Header {
				if strings.EqualFold(k, HeaderCaller) {
					callers = append(callers, vs...)
				}
			}
			sawCallers.Store(strings.Join(callers, ","))
			if r.URL.Path == "/hang" {
				_, sawDeadline0 := r.Context().Deadline()
				sawDeadline.Store(sawDeadline0)
				<-r.Context().Done()
				http.Error(w, "gave up", http.StatusGatewayTimeout)
			}
		}))
	})
	// A raw NATS client calling orders as web reads its replies in the
	// pair inbox of web and orders: the agent answers no other reply
	// subject.
	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.PairInbox("web", "orders")))
	m := &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{
		wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/hang"},
		"Mesh-Hdr-mesh-caller": {"admin"}, "Mesh-Hdr-MESH-CALLER": {"root"},
	}}
	reply, err := nc.RequestMsg(m, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !sawDeadline.Load() || reply.Header.Get(wire.HeaderStatus) != "504" {
		t.Errorf("handler deadline %v, reply %v: want the agent's default deadline applied", sawDeadline.Load(), reply.Header)
	}
	if got := sawCallers.Load(); got != "web" {
		t.Errorf("handler saw callers %q, want only the subject's \"web\"", got)
	}
}

func TestGRPCServerAfterStartPanics(t *testing.T) {
	b := meshtest.Broker(t)
	a := startAgent(t, b, Config{Service: "orders"}, func(a *Agent) { a.Handle(http.NotFoundHandler()) })
	defer func() {
		if recover() == nil {
			t.Fatal("GRPCServer after Start did not panic")
		}
	}()
	a.GRPCServer()
}
