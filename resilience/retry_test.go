package resilience_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// parallel runs n calls of f over workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// A service that fails a tenth of its calls at random: retries hide nearly
// all of it from GETs, and never repeat a POST.
func TestRetriesHideRandomFailures(t *testing.T) {
	b := meshtest.Broker(t)
	var mu sync.Mutex
	posts := map[string]int{}
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			posts[r.Header.Get("X-Id")]++
			mu.Unlock()
		}
		if rand.N(10) == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	// The default budget (20% and 10/s), with a short backoff so the test
	// is quick.
	src, _ := meshFile(t, `
version: 1
defaults:
  retries: {backoff: 1ms, max_backoff: 4ms}
services:
  orders: {}
`)
	hc := client(t, b, src)

	// Three attempts leave 0.1% failing: about 2 of 2,000 calls, and 10 or
	// more (0.5%) by chance about once in 20,000 runs (1,000 calls left
	// that chance at 1 in 270).
	const n = 2000
	var failed atomic.Int64
	parallel(n, 8, func(i int) {
		if status, _, _ := get(t, hc, "http://orders/x"); status != http.StatusOK {
			failed.Add(1)
		}
	})
	if rate := float64(failed.Load()) / n; rate >= 0.005 {
		t.Errorf("GET error rate %.2f%%, want under 0.5%%", rate*100)
	}
	t.Logf("GET: %d of %d failed", failed.Load(), n)

	const m = 200
	var postFailed atomic.Int64
	parallel(m, 8, func(i int) {
		req, _ := http.NewRequest(http.MethodPost, "http://orders/x", nil)
		req.Header.Set("X-Id", strconv.Itoa(i))
		if status, _, _ := do(t, hc, req); status != http.StatusOK {
			postFailed.Add(1)
		}
	})
	if len(posts) != m {
		t.Errorf("%d distinct POSTs reached the service, want %d", len(posts), m)
	}
	for id, k := range posts {
		if k != 1 {
			t.Errorf("POST %s ran %d times, want once", id, k)
		}
	}
	if postFailed.Load() == 0 {
		t.Error("no POST saw a 500: were they retried?")
	}
}

// Every call fails: the retry budget keeps the extra attempts within its
// share of the calls plus its floor per second.
func TestRetryBudget(t *testing.T) {
	b := meshtest.Broker(t)
	var served atomic.Int64
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	src, _ := meshFile(t, `
version: 1
services:
  orders:
    policy:
      retries: {attempts: 3, backoff: 1ms, max_backoff: 1ms, budget: 20%, min_per_second: 2}
      circuit_breaker: {enabled: false}
`)
	hc := client(t, b, src)
	const n, workers = 400, 4
	start := time.Now()
	parallel(n, workers, func(int) {
		if status, _, _ := get(t, hc, "http://orders/x"); status != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", status)
		}
	})
	secs := time.Since(start).Seconds()
	extra := served.Load() - n
	// The share, the floor for every second begun, and one retry per
	// worker that may pass the check at once.
	allowed := 0.2*n + 2*(secs+1) + workers
	t.Logf("%d calls, %d extra attempts in %.1fs (without a budget: %d)", n, extra, secs, 2*n)
	if float64(extra) > allowed {
		t.Errorf("%d extra attempts, want at most %.0f", extra, allowed)
	}
	if extra < 0.15*n {
		t.Errorf("%d extra attempts: the budget's share (20%% of %d) was not spent", extra, n)
	}
}

// The built-in policy (no mesh file) retries the calls that never ran, for
// every method, at least three times: a POST whose first attempts found no
// one serving reaches the instance that is there by the third.
func TestBuiltinRetriesNothingRan(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindNoResponders, wire.KindOverloaded, wire.KindUpstreamRefused, wire.KindBrokerUnavailable, wire.KindNoMeshFile} {
		t.Run(string(kind), func(t *testing.T) {
			var tries atomic.Int32
			var start time.Time
			terminal := pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
				if tries.Add(1) < 3 {
					return nil, &wire.Error{Kind: kind}
				}
				return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
			})
			s := resilience.New(resilience.Config{})(terminal)
			start = time.Now()
			c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x"}
			if _, err := s.Send(context.Background(), c); err != nil {
				t.Fatalf("POST failed after %d tries: %v", tries.Load(), err)
			}
			if n := tries.Load(); n != 3 {
				t.Errorf("%d attempts, want 3", n)
			}
			t.Logf("three tries in %v", time.Since(start))
		})
	}
}

// Retries resend the body as it came, each attempt a copy of its own.
func TestRetryReplaysBody(t *testing.T) {
	b := meshtest.Broker(t)
	var mu sync.Mutex
	var bodies [][]byte
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, body)
		k := len(bodies)
		mu.Unlock()
		if k < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write(body)
	})
	src, _ := meshFile(t, `
version: 1
services:
  orders:
    policy:
      idempotent: true
      retries: {attempts: 3, backoff: 1ms}
`)
	hc := client(t, b, src)
	want := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	req, _ := http.NewRequest(http.MethodPost, "http://orders/x", bytes.NewReader(want))
	status, _, body := do(t, hc, req)
	if status != http.StatusOK || body != string(want) {
		t.Fatalf("status %d, body of %d bytes; want 200 and the %d bytes sent", status, len(body), len(want))
	}
	if len(bodies) != 3 {
		t.Fatalf("%d attempts reached the service, want 3", len(bodies))
	}
	for i, got := range bodies {
		if !bytes.Equal(got, want) {
			t.Errorf("attempt %d got %d bytes, want the %d sent", i+1, len(got), len(want))
		}
	}
}

// The policy is read per call: a new version of the mesh file applies to
// the next call, without a restart.
func TestPolicyChangesLive(t *testing.T) {
	b := meshtest.Broker(t)
	var calls atomic.Int64
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	file := func(attempts int) string {
		return fmt.Sprintf("version: 1\nservices:\n  orders:\n    policy:\n      retries: {attempts: %d, backoff: 1ms}\n      circuit_breaker: {enabled: false}\n", attempts)
	}
	src, write := meshFile(t, file(1))
	hc := client(t, b, src)
	if status, _, _ := get(t, hc, "http://orders/x"); status != http.StatusInternalServerError {
		t.Fatalf("with one attempt: status %d, want the 500", status)
	}
	calls.Store(0)
	write(file(2))
	if status, _, _ := get(t, hc, "http://orders/x"); status != http.StatusOK {
		t.Fatalf("with two attempts: status %d, want 200", status)
	}
	if calls.Load() != 2 {
		t.Errorf("%d attempts, want 2", calls.Load())
	}
}
