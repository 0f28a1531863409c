package resilience_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

const breakerFile = `
version: 1
services:
  orders:
    policy:
      retries: {attempts: 1}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 5, open_for: OPEN_FOR, half_open_probes: 2}
`

// A destination that keeps failing opens its breaker: callers get
// circuit-open without reaching it, and once it is healthy again the
// half-open probes close the breaker.
func TestBreakerOpensAndRecovers(t *testing.T) {
	b := meshtest.Broker(t)
	var failing atomic.Bool
	var served atomic.Int64
	failing.Store(true)
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	src, _ := meshFile(t, strings.Replace(breakerFile, "OPEN_FOR", "200ms", 1))
	hc := client(t, b, src)

	// Five failures make min_requests; the sixth call finds it open.
	for range 5 {
		get(t, hc, "http://orders/x")
	}
	status, kind, _ := get(t, hc, "http://orders/x")
	if kind != string(wire.KindCircuitOpen) {
		t.Fatalf("after 6 failures: status %d, Mesh-Error %q; want circuit-open", status, kind)
	}
	if status != http.StatusServiceUnavailable {
		t.Errorf("circuit-open status %d, want 503", status)
	}
	before := served.Load()
	for range 10 {
		if _, kind, _ := get(t, hc, "http://orders/x"); kind != string(wire.KindCircuitOpen) {
			break
		}
	}
	if got := served.Load() - before; got > 2 {
		t.Errorf("%d calls reached the service while the breaker was open", got)
	}

	failing.Store(false)
	meshtest.CheckFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if status, kind, _ := get(t, hc, "http://orders/x"); status != http.StatusOK {
			return errors.New("still " + kind)
		}
		return nil
	})
	// Closed again: every call goes through.
	for range 10 {
		if status, kind, _ := get(t, hc, "http://orders/x"); status != http.StatusOK {
			t.Fatalf("after recovery: status %d, %q", status, kind)
		}
	}
}

// Replies the caller caused (4xx) and forbidden answers do not count
// against the destination.
func TestBreakerIgnores4xx(t *testing.T) {
	b := meshtest.Broker(t)
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	})
	src, _ := meshFile(t, strings.Replace(breakerFile, "OPEN_FOR", "5s", 1))
	hc := client(t, b, src)
	for i := range 30 {
		if status, kind, _ := get(t, hc, "http://orders/x"); status != http.StatusNotFound {
			t.Fatalf("call %d: status %d, %q; want the service's 404", i, status, kind)
		}
	}
}

// The bulkhead bounds this caller's calls in flight to a destination: one
// over the limit fails at once as overloaded, saying whose limit it is,
// and is not retried.
func TestBulkhead(t *testing.T) {
	b := meshtest.Broker(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	var served atomic.Int64
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		entered <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	})
	src, _ := meshFile(t, `
version: 1
services:
  orders:
    policy:
      bulkhead: {max_concurrent: 1}
`)
	hc := client(t, b, src)
	first := make(chan int)
	go func() {
		status, _, _ := get(t, hc, "http://orders/x")
		first <- status
	}()
	<-entered
	status, kind, body := get(t, hc, "http://orders/x")
	close(release)
	if status != http.StatusServiceUnavailable || kind != string(wire.KindOverloaded) {
		t.Errorf("over the bulkhead: status %d, %q; want 503 overloaded", status, kind)
	}
	if !strings.Contains(body, "caller's own limit of 1") {
		t.Errorf("body %q does not say it is the caller's own limit", body)
	}
	if s := <-first; s != http.StatusOK {
		t.Errorf("the call within the limit: status %d", s)
	}
	if served.Load() != 1 {
		t.Errorf("%d calls reached the service, want 1", served.Load())
	}
}

// BenchmarkCircuitOpen measures the answer of an open breaker, as the
// caller sees it through the in-process transport.
func BenchmarkCircuitOpen(b *testing.B) {
	br := meshtest.Broker(b)
	serve(b, br, "orders", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	src, _ := meshFile(b, strings.Replace(breakerFile, "OPEN_FOR", "1h", 1))
	hc := client(b, br, src)
	for range 6 {
		get(b, hc, "http://orders/x")
	}
	if _, kind, _ := get(b, hc, "http://orders/x"); kind != string(wire.KindCircuitOpen) {
		b.Fatalf("breaker not open: %q", kind)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, kind, _ := get(b, hc, "http://orders/x"); kind != string(wire.KindCircuitOpen) {
			b.Fatalf("breaker not open: %q", kind)
		}
	}
}
