package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

func TestNewSidecarValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  SidecarConfig
		want error
		text string
	}{
		{"bad service", SidecarConfig{Agent: Config{Service: "Orders"}, HTTP: "127.0.0.1:0"}, ErrConfig, `use "orders"`},
		{"nothing to do", SidecarConfig{Agent: Config{Service: "web"}, HTTP: "off"}, ErrNothingToDo, ""},
		{"bad bind", SidecarConfig{Agent: Config{Service: "web"}, Binds: []Bind{{Dest: "a.b.c", Addr: "127.0.0.1:0"}}}, ErrConfig, `bind "a.b.c"`},
		{"bind without address", SidecarConfig{Agent: Config{Service: "web"}, Binds: []Bind{{Dest: "orders"}}}, ErrConfig, "no address"},
		{"creds and nkey", SidecarConfig{Agent: Config{Service: "web"}, HTTP: "127.0.0.1:0", Connect: ConnectConfig{Creds: "c", NKey: "n"}}, ErrConfig, "exclusive"},
		{"admin collision", SidecarConfig{Agent: Config{Service: "web", Admin: map[string]http.Handler{"GET /readyz": http.NotFoundHandler()}}, HTTP: "127.0.0.1:0"}, ErrConfig, "/readyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSidecar(tt.cfg)
			if err == nil {
				s.Shutdown(context.Background())
				t.Fatal("NewSidecar accepted it")
			}
			if (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("NewSidecar = %v, want %v containing %q", err, tt.want, tt.text)
			}
		})
	}
}

// nowhere is an address no broker listens on.
func nowhere(t *testing.T) ConnectConfig {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return ConnectConfig{URL: "nats://" + l.Addr().String(), Timeout: time.Minute, Logger: quiet}
}

// TestSidecarStartFailsBeforeConnecting: a port in use, a mesh file that
// does not load and a credentials file that is not there fail Start at
// once, before it connects (no broker answers, and it would wait a
// minute), and the ports it opened are free again.
func TestSidecarStartFailsBeforeConnecting(t *testing.T) {
	busy := meshtest.BusyAddr(t)
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	missing := filepath.Join(t.TempDir(), "none")
	for _, tt := range []struct {
		name   string
		cfg    SidecarConfig
		config bool // wraps ErrConfig
		text   string
	}{
		{"port in use", SidecarConfig{HTTP: busy}, false, "agent: HTTP proxy listener: listen tcp"},
		{"admin port in use", SidecarConfig{HTTP: free(), Admin: busy}, false, "agent: admin listener: listen tcp"},
		{"no mesh file", SidecarConfig{HTTP: free(), Admin: free(), Policy: missing}, false, "none"},
		{"no creds file", SidecarConfig{HTTP: free(), Admin: free(), Connect: ConnectConfig{Creds: missing}}, true, "credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Agent = Config{Service: "web", Logger: quiet}
			if cfg.Connect.Creds == "" {
				cfg.Connect = nowhere(t)
			}
			s, err := NewSidecar(cfg)
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			err = s.Start(context.Background())
			if err == nil || errors.Is(err, ErrConfig) != tt.config || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Start = %v, want one containing %q (ErrConfig: %v)", err, tt.text, tt.config)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("Start failed after %v: it connected first", d)
			}
			// The ports it took are free again.
			for _, addr := range []string{cfg.HTTP, cfg.Admin} {
				if addr == "" || addr == busy {
					continue
				}
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("%s stayed open: %v", addr, err)
				}
				l.Close()
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNewSidecarDoesNoIO: NewSidecar with a broker nobody runs, a mesh
// file that does not exist and listener addresses returns at once,
// listening on none of them and starting no goroutine.
func TestNewSidecarDoesNoIO(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	begin := time.Now()
	s, err := NewSidecar(SidecarConfig{Agent: Config{Service: "web", Logger: quiet}, Connect: nowhere(t),
		HTTP: addr, Policy: filepath.Join(t.TempDir(), "none.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("NewSidecar took %v", d)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("NewSidecar listens")
	}
	if s.Addr("HTTP proxy") != nil || s.Agent() != nil || s.Conn() != nil {
		t.Error("an address, an agent or a connection before Start")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
}

// TestSidecarShutdownWhileStartConnects: a Shutdown that comes while
// Start still waits for the broker cancels that wait and waits for Start,
// which returns ErrClosed; nothing stays open, and the broker coming up
// afterwards finds no connection.
func TestSidecarShutdownWhileStartConnects(t *testing.T) {
	cc := nowhere(t)
	brokerAddr := strings.TrimPrefix(cc.URL, "nats://")
	s, err := NewSidecar(SidecarConfig{Agent: Config{Service: "web", Logger: quiet}, Connect: cc, HTTP: "127.0.0.1:0", Admin: "127.0.0.1:0", Policy: live.Off})
	if err != nil {
		t.Fatal(err)
	}
	// Until the broker is up, a listener at its address sees Start's
	// first try to connect: then Start is waiting, and Shutdown comes.
	l, err := net.Listen("tcp", brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- s.Start(context.Background()) }()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	if err := s.Readiness(); err == nil || !strings.Contains(err.Error(), "connecting to NATS") {
		t.Errorf("Readiness while connecting: %v", err)
	}
	proxy, admin := s.Addr("HTTP proxy").String(), s.Addr("admin").String()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Shutdown waits for Start's work; Start's goroutine sends its result
	// a moment after, so that moment is waited for, bounded.
	select {
	case err := <-started:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Start: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Start had not returned 2s after Shutdown did")
	}
	for _, addr := range []string{proxy, admin} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Shutdown", addr)
		}
	}
	b := meshtest.Broker(t, func(c *broker.Config) { c.Listen = brokerAddr })
	meshtest.CheckFor(t, 2*time.Second, 50*time.Millisecond, func() error {
		if n := b.Server().NumClients(); n != 0 {
			return fmt.Errorf("%d clients on the broker", n)
		}
		return nil
	})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if s.Conn() != nil || s.Agent() != nil {
		t.Error("a connection or an agent from a Start that Shutdown interrupted")
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSidecarLifecycle: a sidecar connects, serves its listeners and admin
// endpoint, reports ready, and while it drains reports not ready.
func TestSidecarLifecycle(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "orders-1")
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL})
	s, err := NewSidecar(SidecarConfig{
		Agent:    Config{Service: "web", Logger: quiet},
		Connect:  ConnectConfig{URL: b.ClientURL(), Logger: quiet},
		HTTP:     "127.0.0.1:0",
		Binds:    []Bind{{Dest: "orders", Addr: "127.0.0.1:0"}},
		Admin:    "127.0.0.1:0",
		Profiles: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
	if err := s.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + s.Addr("admin").String()
	if code := getStatus(t, admin+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d, want 200", code)
	}
	if code := getStatus(t, admin+"/debug/pprof/"); code != 200 {
		t.Fatalf("/debug/pprof/ %d, want 200", code)
	}
	resp, err := proxyClient(s.Addr("HTTP proxy").String()).Get("http://orders/x")
	if err != nil {
		t.Fatal(err)
	}
	if e := decodeEcho(t, resp); e.Caller != "web" {
		t.Fatalf("orders saw caller %q", e.Caller)
	}
	resp, err = http.Get("http://" + s.Addr("bind orders").String() + "/y")
	if err != nil {
		t.Fatal(err)
	}
	decodeEcho(t, resp)
	if got := s.Conn().Opts.InboxPrefix; got != wire.InboxPrefix("web") {
		t.Fatalf("connected with inbox prefix %q", got)
	}

	// Readiness while draining: the agent is closing.
	s.Agent().mu.Lock()
	s.Agent().closed = true
	s.Agent().mu.Unlock()
	if err := s.Agent().Readiness(); err == nil {
		t.Fatal("ready while shutting down")
	}
	s.Agent().mu.Lock()
	s.Agent().closed = false
	s.Agent().mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Conn().IsClosed() {
		t.Fatal("the connection Start opened is still open after Shutdown")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := s.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
	if err := s.Ready(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Shutdown: %v, want ErrClosed", err)
	}
}

func TestNewRefusesConnectionWithoutInboxPrefix(t *testing.T) {
	b := meshtest.Broker(t)
	for _, opts := range [][]nats.Option{nil, {nats.CustomInboxPrefix(wire.InboxPrefix("other"))}} {
		nc := meshtest.Conn(t, b, opts...)
		if _, err := New(nc, Config{Service: "web"}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "inbox prefix") {
			t.Fatalf("New = %v, want ErrConfig about the inbox prefix", err)
		}
	}
}
