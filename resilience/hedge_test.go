package resilience_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
)

const hedgeFile = `
version: 1
services:
  orders:
    policy:
      idempotent: true
      hedge: HEDGE
`

// attemptRecorder is innermost outbound middleware that records each
// attempt: its header map, and how its context ended.
type attemptRecorder struct {
	mu      sync.Mutex
	headers []uintptr
	ends    []error
}

func (r *attemptRecorder) middleware(next pipeline.Sender) pipeline.Sender {
	return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		// Writing to the attempt's own header map: were two attempts to
		// share one, -race would fail the test.
		c.Header.Set("X-Attempt", "recorded")
		r.mu.Lock()
		r.headers = append(r.headers, reflect.ValueOf(c.Header).Pointer())
		r.mu.Unlock()
		msg, err := next.Send(ctx, c)
		r.mu.Lock()
		r.ends = append(r.ends, ctx.Err())
		r.mu.Unlock()
		return msg, err
	})
}

// A slow first attempt gets a hedge; the hedge's answer wins and the slow
// attempt is cancelled.
func TestHedgeFirstAnswerWins(t *testing.T) {
	b := meshtest.Broker(t)
	var arrivals atomic.Int32
	release := make(chan struct{})
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		if arrivals.Add(1) == 1 {
			// A cancelled attempt is not cancelled at the receiver: it
			// runs until its own deadline, or here until the test ends.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			io.WriteString(w, "slow")
			return
		}
		io.WriteString(w, "fast")
	})
	t.Cleanup(func() { close(release) }) // before the agent's shutdown
	src, _ := meshFile(t, hedgeFileWith("{delay: 20ms}"))
	rec := &attemptRecorder{}
	log := &attemptLog{}
	hc := client(t, b, src, func(c *agent.Config) { c.Outbound = []pipeline.OutboundMiddleware{log.middleware, rec.middleware} })

	req, _ := http.NewRequest(http.MethodGet, "http://orders/x", nil)
	status, _, body := do(t, hc, req)
	if status != http.StatusOK || body != "fast" {
		t.Fatalf("status %d, body %q; want the hedge's 200 fast", status, body)
	}
	if attempts, _, hedges := log.counts(); attempts != 2 || hedges != 1 {
		t.Errorf("attempts %d, hedges %d; want 2 and 1", attempts, hedges)
	}
	meshtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.ends) < 2 {
			return fmt.Errorf("%d attempts ended", len(rec.ends))
		}
		return nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.ends[0] != nil || rec.ends[1] != context.Canceled {
		t.Errorf("attempts ended with %v; want the hedge first (nil) and the slow one cancelled", rec.ends)
	}
	if len(rec.headers) != 2 || rec.headers[0] == rec.headers[1] {
		t.Errorf("attempts' header maps %v, want two distinct", rec.headers)
	}
}

// Concurrent hedged calls: every attempt a header map of its own (run
// with -race).
func TestHedgesShareNoHeaders(t *testing.T) {
	b := meshtest.Broker(t)
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(rand.N(3)) * time.Millisecond)
		io.WriteString(w, "ok")
	})
	src, _ := meshFile(t, hedgeFileWith("{delay: 1ms, max: 2}"))
	rec := &attemptRecorder{}
	hc := client(t, b, src, func(c *agent.Config) { c.Outbound = []pipeline.OutboundMiddleware{rec.middleware} })
	parallel(100, 8, func(int) {
		req, _ := http.NewRequest(http.MethodGet, "http://orders/x", nil)
		req.Header.Set("X-Shared", "v")
		if status, kind, _ := do(t, hc, req); status != http.StatusOK {
			t.Errorf("status %d %q", status, kind)
		}
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.headers) <= 100 {
		t.Errorf("%d attempts for 100 calls: no hedges sent", len(rec.headers))
	}
}

func hedgeFileWith(h string) string {
	return strings.Replace(hedgeFile, "HEDGE", h, 1)
}

// BenchmarkHedgeP99 measures the p99 latency of calls to a service that is
// slow at random 5% of the time, without and with hedging.
func BenchmarkHedgeP99(b *testing.B) {
	for _, bc := range []struct{ name, hedge string }{
		{"none", ""},
		{"delay", "{delay: 3ms}"},
		{"p90", "{percentile: 90}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := meshtest.Broker(b)
			serve(b, br, "orders", func(w http.ResponseWriter, r *http.Request) {
				if rand.N(20) == 0 {
					select {
					case <-r.Context().Done():
					case <-time.After(30 * time.Millisecond):
					}
				}
				io.WriteString(w, "ok")
			})
			file := "version: 1\nservices:\n  orders:\n    policy:\n      idempotent: true\n"
			if bc.hedge != "" {
				file = hedgeFileWith(bc.hedge)
			}
			src, _ := meshFile(b, file)
			hc := client(b, br, src)
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				if status, kind, _ := get(b, hc, "http://orders/x"); status != http.StatusOK {
					b.Fatalf("status %d %q", status, kind)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
		})
	}
}
