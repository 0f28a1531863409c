package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestNewSidecarValidates(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
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
		{"port in use", SidecarConfig{Agent: Config{Service: "web"}, HTTP: busy.Addr().String()}, nil, "HTTP proxy listener"},
		{"admin port in use", SidecarConfig{Agent: Config{Service: "web"}, HTTP: "127.0.0.1:0", Admin: busy.Addr().String()}, nil, "admin listener"},
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
	// A failed NewSidecar leaves no listener open: the port it took first
	// is free again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := NewSidecar(SidecarConfig{Agent: Config{Service: "web"}, HTTP: addr, Admin: busy.Addr().String()}); err == nil {
		t.Fatal("NewSidecar accepted a busy admin port")
	}
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("the HTTP proxy port stayed open: %v", err)
	} else {
		l.Close()
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
		Agent:   Config{Service: "web", Logger: quiet},
		Connect: ConnectConfig{URL: b.ClientURL(), Logger: quiet},
		HTTP:    "127.0.0.1:0",
		Binds:   []Bind{{Dest: "orders", Addr: "127.0.0.1:0"}},
		Admin:   "127.0.0.1:0",
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
