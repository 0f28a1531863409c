package traffic_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
)

const splitFile = `
version: 1
services:
  web: {}
  inv:
    subsets: [v1, v2]
    policy:
      split: {v1: 90, v2: 10}
    routes:
      - name: beta
        match: {headers: {x-beta: "1"}}
        split: {v2: 100}
`

func TestSplit(t *testing.T) {
	m := agenttest.NewMesh(t, splitFile)
	var served agenttest.Counter
	m.Agent("inv", "v1", agenttest.Named("v1", &served))
	m.Agent("inv", "v2", agenttest.Named("v2", &served))
	web := m.Client("web")

	const n = 2000
	parallel(n, 16, func(int) {
		if st, body, _ := agenttest.Get(t, web, "http://inv/x"); st != 200 {
			t.Errorf("got %d %s", st, body)
		}
	})
	v1, v2 := served.Get("v1"), served.Get("v2")
	if v1+v2 != n {
		t.Fatalf("served %d + %d, want %d", v1, v2, n)
	}
	if share := float64(v2) / n; !within(share, 0.10, 0.03) {
		t.Errorf("v2 served %.1f%% of %d calls, want 10%% ± 3%%", share*100, n)
	}
}

func TestHeaderRoute(t *testing.T) {
	m := agenttest.NewMesh(t, splitFile)
	var served agenttest.Counter
	m.Agent("inv", "v1", agenttest.Named("v1", &served))
	m.Agent("inv", "v2", agenttest.Named("v2", &served))
	web := m.Client("web")

	for range 100 {
		if _, body, _ := agenttest.Get(t, web, "http://inv/x", "X-Beta", "1"); body != "v2" {
			t.Fatalf("x-beta: 1 served by %q, want v2", body)
		}
	}
	// A call that names its subset keeps it, whatever the split.
	for range 50 {
		if _, body, _ := agenttest.Get(t, web, "http://v1.inv/x", "X-Beta", "1"); body != "v1" {
			t.Fatalf("v1.inv served by %q, want v1", body)
		}
	}
}

// The shadow fails every call: its breaker is off so that every copy
// reaches it (with it on, the breaker opens after min_requests failures and
// later copies are refused at the caller, which is what a failing shadow
// should get).
const mirrorFile = `
version: 1
services:
  web: {}
  shadow:
    policy:
      circuit_breaker: {enabled: false}
  orders:
    policy:
      mirror: {to: shadow, percent: 100%}
`

// attemptsKey carries a call's count of attempts in TestMirror.
type attemptsKey struct{}

func TestMirror(t *testing.T) {
	m := agenttest.NewMesh(t, mirrorFile)
	var served agenttest.Counter
	m.Agent("orders", "", agenttest.Named("orders", &served))
	// The mirror target answers differently and fails: the caller must
	// never see it.
	m.Agent("shadow", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add("shadow")
		http.Error(w, "shadow", http.StatusInternalServerError)
	}))
	// The copy starts from a context of its own: none of the primary
	// call's values (its telemetry state, here a count of its attempts)
	// reach it, so it counts for none of the call's attempts.
	var leaked atomic.Int32
	countAttempts := func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if n, _ := ctx.Value(attemptsKey{}).(*atomic.Int32); n != nil {
				if pipeline.IsMirror(ctx) {
					leaked.Add(1)
				}
				n.Add(1)
			}
			return next.Send(ctx, c)
		})
	}
	a := m.Agent("web", "", nil, func(c *agent.Config) { c.Outbound = []pipeline.OutboundMiddleware{countAttempts} })
	web := &http.Client{Transport: a.Transport(), Timeout: 10 * time.Second}

	const n = 200
	for range n {
		attempts := new(atomic.Int32)
		ctx := context.WithValue(context.Background(), attemptsKey{}, attempts)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://orders/x", nil)
		resp, err := web.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "orders" {
			t.Fatalf("caller got %d %q, want the primary's 200 orders", resp.StatusCode, body)
		}
		if a := attempts.Load(); a != 1 || leaked.Load() != 0 {
			t.Fatalf("the primary call counted %d attempts, want 1 (%d from a mirror copy)", a, leaked.Load())
		}
	}
	// Each copy exactly once: a mirror copy is never retried, although
	// the shadow's 500s on GET would be.
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := served.Get("shadow"); got != n {
			return errorf("shadow got %d copies, want %d", got, n)
		}
		return nil
	})
	if got := served.Get("orders"); got != n {
		t.Errorf("orders served %d, want %d", got, n)
	}
}

// BenchmarkMirror measures a call's latency without a mirror, with a
// mirror copy to a fast service and to a slow one (5ms): the slow copy
// must cost no more than the fast one, as the caller never waits for it.
// (A copy still costs its CPU: it is a second request through the mesh.)
func BenchmarkMirror(b *testing.B) {
	for _, tc := range []struct {
		name, file string
		slow       time.Duration
	}{
		{"none", "version: 1\nservices:\n  web: {}\n  shadow: {}\n  orders: {}\n", 0},
		{"mirror-fast", mirrorFile, 0},
		{"mirror-slow", mirrorFile, 5 * time.Millisecond},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := agenttest.NewMesh(b, tc.file)
			m.Agent("orders", "", agenttest.Named("orders", nil))
			m.Agent("shadow", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(tc.slow)
			}))
			web := m.Client("web")
			b.ResetTimer()
			for b.Loop() {
				if st, _, _ := agenttest.Get(b, web, "http://orders/x"); st != 200 {
					b.Fatal(st)
				}
			}
		})
	}
}

// TestSplitFallsBack (issue 21, item 7): with one subset of a split
// serving no instance (the only v1 instance drains in a rolling
// restart), the calls the split sends there fall back to the split's
// other subset, since no-responders means nothing ran: none fails.
// Before, retries kept the subset the split picked and 90% of calls got
// no-responders.
func TestSplitFallsBack(t *testing.T) {
	m := agenttest.NewMesh(t, splitFile)
	var served agenttest.Counter
	m.Agent("inv", "v2", agenttest.Named("v2", &served)) // no v1 instance
	web := m.Client("web")
	for i := 0; i < 40; i++ {
		if st, body, _ := agenttest.Get(t, web, "http://inv/x"); st != 200 {
			t.Fatalf("call %d: %d %s, want the split's other subset to answer", i, st, body)
		}
	}
	if n := served.Get("v2"); n != 40 {
		t.Errorf("v2 served %d of 40", n)
	}
	// A call that names its subset keeps it: no fallback.
	if st, _, _ := agenttest.Get(t, web, "http://v1.inv/x"); st != http.StatusServiceUnavailable {
		t.Errorf("a call to v1.inv with no v1 instance: %d, want 503", st)
	}
}
