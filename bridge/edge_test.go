package bridge

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// freePort returns an address nothing listens on (for a moment).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEdge runs an edge against a real broker: it listens and connects at
// Start under the gateway's inbox prefix, forwards a request, serves its
// admin endpoint (with the endpoints given and GET /config), and once shut
// down has closed its listeners and its connection; Start after Shutdown
// is refused.
func TestEdge(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	if _, err := nc.Subscribe("svc.echo", func(m *nats.Msg) { m.Respond(append([]byte("echo:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	e, err := NewEdge(EdgeConfig{
		Gateway: GatewayConfig{Name: "edge", Routes: []Route{{PathPrefix: "/echo", Subject: "svc.echo"}}, Logger: discardLogger(),
			Admin: map[string]http.Handler{"GET /static": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "static") })}},
		Connect: ConnectConfig{URL: b.ClientURL(), Logger: discardLogger()},
		Listen:  "127.0.0.1:0",
		Admin:   "127.0.0.1:0",
		AdminConn: func(c *nats.Conn) (map[string]http.Handler, error) {
			return map[string]http.Handler{"GET /conn": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, c.Opts.Name)
			})}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.Gateway() != nil || e.Conn() != nil || e.Addr() != nil || e.AdminAddr() != nil {
		t.Fatal("a gateway, a connection or a listener before Start")
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := e.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := e.Conn().Opts.InboxPrefix, wire.InboxPrefix("edge"); got != want {
		t.Fatalf("inbox prefix %q, want %q", got, want)
	}
	resp, err := http.Post("http://"+e.Addr().String()+"/echo", "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "echo:hi" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	admin := "http://" + e.AdminAddr().String()
	for path, want := range map[string]string{"/readyz": "ready", "/static": "static", "/conn": "natsmesh-bridge:edge", "/config": "{"} {
		if code, body := get(t, admin+path); code != 200 || !strings.HasPrefix(body, want) {
			t.Errorf("GET %s: %d %q, want 200 %q...", path, code, body, want)
		}
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if !e.Conn().IsClosed() {
		t.Error("the connection Start opened is still open")
	}
	for _, addr := range []string{e.Addr().String(), e.AdminAddr().String()} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Shutdown", addr)
		}
	}
	select {
	case err := <-e.Err():
		t.Fatalf("Err after a clean shutdown: %v", err)
	default:
	}
	if err := e.Start(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Start after Shutdown: %v, want ErrShutdown", err)
	}
}

// TestEdgeShutdownOrder: Shutdown finishes the request in flight, while
// the admin endpoint, still up, answers /readyz "not ready"; a connection
// the edge was given stays open.
func TestEdgeShutdownOrder(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	got, release := make(chan struct{}), make(chan struct{})
	if _, err := nc.Subscribe("svc.slow", func(m *nats.Msg) {
		close(got)
		<-release
		m.Respond([]byte("late"))
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	own := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("bridge")))
	e, err := NewEdge(EdgeConfig{
		Gateway: GatewayConfig{Conn: own, Routes: []Route{{PathPrefix: "/", Subject: "svc.slow"}}, Logger: discardLogger()},
		Listen:  "127.0.0.1:0",
		Admin:   "127.0.0.1:0",
		Policy:  "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + e.Addr().String() + "/")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{resp.StatusCode, string(body), nil}
	}()
	<-got
	done := make(chan error, 1)
	go func() { done <- e.Shutdown(context.Background()) }()
	admin := "http://" + e.AdminAddr().String() + "/readyz"
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, body := get(t, admin); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
			return errors.New("/readyz: " + body)
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if a := <-answered; a.err != nil || a.status != 200 || a.body != "late" {
		t.Fatalf("request in flight got %d %q %v, want 200 \"late\"", a.status, a.body, a.err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if own.IsClosed() {
		t.Error("Shutdown closed a connection it was given")
	}
	if c, err := net.Dial("tcp", e.AdminAddr().String()); err == nil {
		c.Close()
		t.Error("admin listener open after Shutdown")
	}
}

// TestNewEdgeValidation: a bad setting fails NewEdge, which does no I/O;
// a port in use, a mesh file that does not load or a credentials file
// that is not there fail Start before anything connects (the URL has no
// server), and whatever Start opened is closed again.
func TestNewEdgeValidation(t *testing.T) {
	busy := meshtest.BusyAddr(t)
	badPolicy := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(badPolicy, []byte("services: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	route := []Route{{PathPrefix: "/", Service: "web"}}
	nowhere := ConnectConfig{URL: "nats://127.0.0.1:1", Timeout: time.Minute}
	for _, tc := range []struct {
		name    string
		cfg     EdgeConfig
		start   bool // fails Start, not NewEdge
		config  bool // wraps ErrInvalidConfig
		message string
	}{
		{"no route target", EdgeConfig{Gateway: GatewayConfig{Routes: []Route{{PathPrefix: "/"}}}, Listen: "127.0.0.1:0"}, false, true, "set exactly one of service and subject"},
		{"bad name", EdgeConfig{Gateway: GatewayConfig{Name: "A.B", Routes: route}, Listen: "127.0.0.1:0"}, false, true, "bridge: gateway name"},
		{"no listener", EdgeConfig{Gateway: GatewayConfig{Routes: route}, Connect: nowhere}, false, true, "no gateway listener address"},
		{"creds and nkey", EdgeConfig{Gateway: GatewayConfig{Routes: route}, Connect: ConnectConfig{Creds: "a", NKey: "b"}, Listen: "127.0.0.1:0"}, false, true, "exclusive"},
		{"no creds file", EdgeConfig{Gateway: GatewayConfig{Routes: route}, Connect: ConnectConfig{Creds: filepath.Join(t.TempDir(), "none.creds")}, Listen: freePort(t)}, true, true, "bridge: credentials:"},
		{"gateway port in use", EdgeConfig{Gateway: GatewayConfig{Routes: route}, Connect: nowhere, Listen: busy}, true, false, "bridge: gateway listener: listen tcp"},
		{"admin port in use", EdgeConfig{Gateway: GatewayConfig{Routes: route}, Connect: nowhere, Listen: freePort(t), Admin: busy}, true, false, "bridge: admin listener: listen tcp"},
		{"bad policy file", EdgeConfig{Gateway: GatewayConfig{Routes: route}, Connect: nowhere, Listen: freePort(t), Policy: badPolicy}, true, false, "mesh.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Gateway.Logger = discardLogger()
			e, err := NewEdge(tc.cfg)
			if tc.start {
				if err != nil {
					t.Fatalf("NewEdge: %v", err)
				}
				begin := time.Now()
				err = e.Start(context.Background())
				if d := time.Since(begin); d > 5*time.Second {
					t.Errorf("Start failed after %v: it connected first", d)
				}
				defer e.Shutdown(context.Background())
			} else if err == nil {
				e.Shutdown(context.Background())
				t.Fatal("NewEdge succeeded")
			}
			if err == nil || errors.Is(err, ErrInvalidConfig) != tc.config || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("%v, want one containing %q (ErrInvalidConfig: %v)", err, tc.message, tc.config)
			}
			if a := tc.cfg.Listen; a != "" && a != busy && !strings.HasSuffix(a, ":0") {
				l, err := net.Listen("tcp", a)
				if err != nil {
					t.Fatalf("the gateway listener stayed open: %v", err)
				}
				l.Close()
			}
		})
	}
}

// TestNewEdgeDoesNoIO: NewEdge with a broker nobody runs, a mesh file that
// does not exist and listener addresses returns at once, listening on
// none of them and starting no goroutine.
func TestNewEdgeDoesNoIO(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gateway, admin := freePort(t), freePort(t)
	begin := time.Now()
	e, err := NewEdge(EdgeConfig{
		Gateway: GatewayConfig{Routes: []Route{{PathPrefix: "/", Service: "web"}}, Logger: discardLogger()},
		Connect: ConnectConfig{URL: "nats://" + freePort(t), Timeout: time.Minute},
		Listen:  gateway,
		Admin:   admin,
		Policy:  filepath.Join(t.TempDir(), "none.yaml"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("NewEdge took %v", d)
	}
	for _, addr := range []string{gateway, admin} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("NewEdge listens on %s", addr)
		}
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestEdgeStartWithoutBroker: Start reports a broker that never answers
// (not a configuration error), returns ctx's error when stopped while it
// waits, and closes the listeners either way.
func TestEdgeStartWithoutBroker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // of the connection
		cancel  bool          // ctx ends first
	}{
		{"timeout", 200 * time.Millisecond, false},
		{"canceled", time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freePort(t)
			e, err := NewEdge(EdgeConfig{
				Gateway: GatewayConfig{Routes: []Route{{PathPrefix: "/", Service: "web"}}, Logger: discardLogger()},
				Connect: ConnectConfig{URL: "nats://127.0.0.1:1", Timeout: tc.timeout},
				Listen:  addr,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(100*time.Millisecond, cancel)
			}
			err = e.Start(ctx)
			switch {
			case tc.cancel && !errors.Is(err, context.Canceled):
				t.Fatalf("Start = %v, want context.Canceled", err)
			case !tc.cancel && (err == nil || errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "bridge: no NATS connection to nats://127.0.0.1:1")):
				t.Fatalf("Start = %v, want no NATS connection", err)
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the gateway listener stayed open after a failed Start: %v", err)
			}
			l.Close()
			if err := e.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown after a failed Start: %v", err)
			}
		})
	}
	e, err := NewEdge(EdgeConfig{Gateway: GatewayConfig{Routes: []Route{{PathPrefix: "/", Service: "web"}}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}
