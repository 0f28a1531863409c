package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestBridge runs natsmesh bridge against an in-process broker and a NATS
// responder, sends one request through it and stops it with SIGTERM.
func TestBridge(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	if _, err := nc.Subscribe("svc.echo", func(m *nats.Msg) { m.Respond(append([]byte("echo:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	p := startProcEnv(t, []string{"NATSMESH_BRIDGE_ROUTE=/echo=nats:svc.echo"},
		"bridge", "--gateway", addr, "--admin", adminAddr, "--nats", b.ClientURL(), "--timeout", "5s")

	var body []byte
	meshtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Post("http://"+addr+"/echo", "text/plain", strings.NewReader("hi"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if string(body) != "echo:hi" {
		t.Fatalf("got %q\n%s", body, p.stderr)
	}
	resp, err := http.Get("http://" + addr + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Mesh-Error") != "no-route" {
		t.Fatalf("unrouted request got %d %v", resp.StatusCode, resp.Header)
	}
	// The admin port: readiness and the dashboard.
	for _, path := range []string{"/readyz", "/ui/", "/ui/api/graph"} {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("admin %s: %d %s", path, resp.StatusCode, body)
		}
		if path == "/ui/" && !strings.Contains(string(body), "natsmesh") {
			t.Fatalf("admin %s: %s", path, body)
		}
	}

	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0\n%s", code, p.stderr)
	}
}

func TestBridgeBadConfig(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no route", []string{"bridge"}, "natsmesh: bridge: no --route given"},
		{"bad route", []string{"bridge", "--route", "nowhere"}, `natsmesh: bridge: route "nowhere"`},
		{"bad service", []string{"bridge", "--route", "/=Orders"}, `natsmesh: bridge: route "/=Orders"`},
		{"bad name", []string{"bridge", "--route", "/=web", "--service", "A.B"}, "natsmesh: bridge: gateway name"},
		{"creds and nkey", []string{"bridge", "--route", "/=web", "--creds", "a", "--nkey", "b"}, "natsmesh: bridge: --creds and --nkey"},
		{"half tls", []string{"bridge", "--route", "/=web", "--tls-cert", "a"}, "natsmesh: bridge: --tls-cert and --tls-key"},
		{"admin port in use", []string{"bridge", "--route", "/=web", "--gateway", "127.0.0.1:0", "--admin", busy.Addr().String()}, "natsmesh: bridge: admin listener: listen tcp " + busy.Addr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, stderr := natsmesh(t, nil, tc.args...)
			if code := exitStatus(t, cmd.Run()); code != 2 {
				t.Fatalf("exit status %d, want 2\n%s", code, stderr)
			}
			if out := strings.TrimSpace(stderr.String()); !strings.HasPrefix(out, tc.want) || strings.Contains(out, "\n") {
				t.Fatalf("stderr %q, want one line starting %q", out, tc.want)
			}
		})
	}
}

// TestBridgeAdmin: natsmesh bridge --admin serves the gateway's admin
// endpoint (issue 9, item 11): ready while connected to NATS, not ready
// once the broker is gone, for a load balancer to check.
func TestBridgeAdmin(t *testing.T) {
	b := meshtest.Broker(t)
	gw, admin := freeAddr(t), freeAddr(t)
	p := startProc(t, "bridge", "--gateway", gw, "--admin", admin, "--route", "/=web", "--nats", b.ClientURL(), "--pprof")
	waitHTTP(t, p, "http://"+admin+"/readyz")
	for _, path := range []string{"/healthz", "/debug/pprof/"} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	b.Shutdown(context.Background())
	meshtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "NATS") {
			return fmt.Errorf("/readyz without a broker: %s %q", resp.Status, body)
		}
		return nil
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr)
	}
}
