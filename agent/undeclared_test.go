package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// noSubsetsMesh declares orders without subsets: the generated
// permissions let orders serve mesh.orders._.> only.
const noSubsetsMesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
`

// undeclaredV2 is what an orders instance of subset v2 says, once at
// Error and on /readyz, when the broker refuses its queue subscription.
const undeclaredV2 = "the broker refuses orders serving subset v2: the mesh file declares no subset v2 of orders; " +
	"declare it under services.orders.subsets and run natsmesh accounts generate again"

// startOrdersV2 starts an orders agent of subset v2 on m, serving h, with
// health and logging to logs; it shuts down in t.Cleanup. It does not wait
// for it to be ready: the broker may refuse it.
func startOrdersV2(t *testing.T, m *authMesh, h http.Handler, health HealthConfig, logs io.Writer) *Agent {
	t.Helper()
	a, err := New(m.conn("orders"), Config{Service: "orders", Subset: "v2", Policies: live.Static(m.file),
		Health: health, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handle(h); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No deadline: after a broker restart its drain may take longer
	// than 10s, and Shutdown must not return while it runs.
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	return a
}

// restartWithMesh generates m's accounts anew from the mesh file src (the
// same keys) and restarts its broker on the same address with them.
func restartWithMesh(t *testing.T, m *authMesh, src string) {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := accounts.Generate(f.AccountsSpec(), m.dir); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(m.b.ClientURL(), "nats://")
	if err := m.b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	meshtest.Broker(t, func(c *broker.Config) {
		c.ConfigFile, c.Listen, c.LameDuckDuration = accounts.ConfigFile(m.dir), addr, -1
	})
}

// TestUndeclaredSubsetRefused: with generated accounts, the broker refuses
// the queue subscription mesh.orders.v2.> in group orders.v2 of an
// instance started with a subset the mesh file does not declare. The
// agent sees the refusal (it comes before the flush's PONG), leaves its
// queue groups, is neither serving nor ready and says what to do, once,
// at Error; it does not ask again in a loop, health checks or not. A call
// to v2.orders finds no instance.
func TestUndeclaredSubsetRefused(t *testing.T) {
	m := newAuthMesh(t, noSubsetsMesh)
	web := m.agent("web", true, nil)
	for _, tc := range []struct {
		name   string
		health HealthConfig
	}{
		{"no health check", HealthConfig{Disabled: true}},
		{"health checked every 10ms", HealthConfig{Check: func(context.Context) error { return nil }, Interval: 10 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs meshtest.Buffer
			var orders counter
			a := startOrdersV2(t, m, &orders, tc.health, &logs)
			start := time.Now()
			err := a.Ready(10 * time.Second)
			if err == nil || !strings.Contains(err.Error(), undeclaredV2) {
				t.Fatalf("Ready = %v, want the refusal", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Ready took %v to tell a refusal", d)
			}
			if err := a.Readiness(); err == nil || !strings.Contains(err.Error(), undeclaredV2) {
				t.Errorf("Readiness = %v, want the refusal", err)
			}
			if a.Serving() {
				t.Error("serving, though the broker refused its queue subscription")
			}
			// Not half in: the any-subset group is left too.
			for _, url := range []string{"http://v2.orders/x", "http://orders/x"} {
				if status, kind := get(t, web, http.MethodGet, url); status != http.StatusServiceUnavailable || kind != string(wire.KindNoResponders) {
					t.Errorf("GET %s: %d %q, want 503 %s", url, status, kind, wire.KindNoResponders)
				}
			}
			time.Sleep(300 * time.Millisecond) // thirty health checks
			if n := a.in.hold.Refusals(); n != 1 {
				t.Errorf("the broker was asked %d times, want once (a refusal is no matter of time)", n)
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), undeclaredV2) {
				t.Errorf("want the refusal said once at Error, got %d errors:\n%s", n, logs.String())
			}
			if orders.n.Load() != 0 {
				t.Errorf("orders served %d calls", orders.n.Load())
			}
		})
	}
}

// TestUndeclaredSubsetRefusedSidecar: the sidecar of such an instance
// says the same on /readyz (503) and once in its log.
func TestUndeclaredSubsetRefusedSidecar(t *testing.T) {
	m := newAuthMesh(t, noSubsetsMesh)
	meshFile := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte(noSubsetsMesh), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs meshtest.Buffer
	s := runSidecar(t, SidecarConfig{
		Agent: Config{Service: "orders", Subset: "v2", Upstream: listenHTTP(t, &counter{}),
			Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Connect: ConnectConfig{URL: m.b.ClientURL(), NKey: accounts.SeedFile(m.dir, "orders"), Timeout: 5 * time.Second, Logger: quiet},
		Admin:   "127.0.0.1:0",
		Policy:  meshFile,
	})
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, body := readyz(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, undeclaredV2) {
			return fmt.Errorf("/readyz: %d %q, want 503 with the refusal", code, body)
		}
		return nil
	})
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), undeclaredV2) {
		t.Errorf("want the refusal said once at Error, got %d errors:\n%s", n, logs.String())
	}
}

// TestSubsetRefusedAfterReconnect: an instance serving a declared
// subset whose broker comes back with a configuration that no longer
// declares it is refused asynchronously (nats.go sends the subscriptions
// again when it reconnects, and the -ERR comes some time after), and
// leaves its queue groups as if refused at start.
func TestSubsetRefusedAfterReconnect(t *testing.T) {
	m := newAuthMesh(t, strings.Replace(noSubsetsMesh, "  orders:\n", "  orders:\n    subsets: [v2]\n", 1),
		func(c *broker.Config) { c.LameDuckDuration = -1 })
	var logs meshtest.Buffer
	a := startOrdersV2(t, m, &counter{}, HealthConfig{}, &logs)
	if err := a.Ready(5 * time.Second); err != nil {
		t.Fatalf("orders with subset v2 declared: %v", err)
	}

	// The same keys, without subset v2, on the same address.
	restartWithMesh(t, m, noSubsetsMesh)
	meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := a.Readiness(); err == nil || !strings.Contains(err.Error(), undeclaredV2) {
			return fmt.Errorf("Readiness after the reconnect: %v", err)
		}
		return nil
	})
	if a.Serving() {
		t.Error("still serving after the broker refused its subset")
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("want the refusal said once at Error, got %d errors:\n%s", n, logs.String())
	}
}

// TestUndeclaredSubsetRetried: a refused instance asks the broker again
// every refusalRetry (here 200ms), not more often, and serves once the
// broker's configuration declares its subset, saying so.
func TestUndeclaredSubsetRetried(t *testing.T) {
	retry := refusalRetry
	t.Cleanup(func() { refusalRetry = retry })
	refusalRetry = 200 * time.Millisecond
	m := newAuthMesh(t, noSubsetsMesh, func(c *broker.Config) { c.LameDuckDuration = -1 })
	var logs meshtest.Buffer
	a := startOrdersV2(t, m, &counter{}, HealthConfig{}, &logs)
	if err := a.Ready(5 * time.Second); err == nil {
		t.Fatal("ready with an undeclared subset")
	}
	// It asks again, every refusalRetry and no sooner (timers never fire
	// early): three refusals take at least two retries' time.
	begin := time.Now()
	first := a.in.hold.Refusals()
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := a.in.hold.Refusals(); n < first+2 {
			return fmt.Errorf("asked %d times, want %d", n, first+2)
		}
		return nil
	})
	if d := time.Since(begin); d < refusalRetry {
		t.Errorf("asked twice more within %v, want one ask every %v at most", d, refusalRetry)
	}

	// The same keys, with subset v2, on the same address.
	restartWithMesh(t, m, strings.Replace(noSubsetsMesh, "  orders:\n", "  orders:\n    subsets: [v2]\n", 1))
	start := time.Now()
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error { return a.Readiness() })
	t.Logf("ready %v after the restart", time.Since(start))
	// The recovery is said as the instance serves again, which may be
	// just after it reads ready.
	meshtest.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "the broker admits the queue subscriptions now") {
			return fmt.Errorf("want the refusal said once and the recovery; %d errors:\n%s", n, logs.String())
		}
		return nil
	})
}
