package traffic_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestRateLimitPerCaller(t *testing.T) {
	m := newMesh(t, `
version: 1
services:
  greedy: {}
  polite: {}
  pay:
    inbound:
      rate_limit: {per_caller: 2, per: 1s, burst: 2}
`)
	m.agent("pay", "", named("pay", nil))
	greedy, polite := m.client("greedy"), m.client("polite")

	limited := 0
	for range 40 {
		st, _, h := get(t, greedy, "http://pay/")
		switch st {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			if h.Get("Retry-After") == "" || h.Get(wire.HeaderError) != string(wire.KindRateLimited) {
				t.Fatalf("429 without Retry-After or rate-limited: %v", h)
			}
		default:
			t.Fatalf("got %d", st)
		}
	}
	// 3 at once (the rate's one and the burst's two), then 2 a second:
	// however slow the machine, most of 40 calls are refused.
	if limited < 20 {
		t.Errorf("%d of 40 calls over the limit were refused, want most", limited)
	}
	// Another caller has a limit of its own.
	for range 3 {
		if st, _, _ := get(t, polite, "http://pay/"); st != http.StatusOK {
			t.Fatalf("polite caller got %d", st)
		}
	}
}

// logSink collects log lines, for asserting on decisions.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), sub)
}

// flaky answers 500 while failing is set, and counts its calls.
func flaky(name string, c *counter, failing *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.add(name)
		if failing.Load() {
			http.Error(w, name+" failing", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(name))
	})
}

const outlierFile = `
version: 1
services:
  web: {}
  pay:
    inbound:
      passive_health: {failure_ratio: 50%, window: 1s, min_requests: 5, cool_off: 1500ms, max_ejected: 50%}
`

func TestPassiveHealth(t *testing.T) {
	m := newMesh(t, outlierFile)
	var served counter
	var failing, never atomic.Bool
	a := m.agent("pay", "", flaky("a", &served, &failing))
	m.agent("pay", "", flaky("b", &served, &never))
	web := m.client("web")

	failing.Store(true)
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		get(t, web, "http://pay/")
		if a.Serving() {
			return errorf("a still serving after %d calls", served.get("a"))
		}
		return nil
	})
	// The healthy sibling takes every call.
	before := served.get("b")
	for range 20 {
		if st, body, _ := get(t, web, "http://pay/"); st != 200 || body != "b" {
			t.Fatalf("got %d %q while a is out, want b", st, body)
		}
	}
	if got := served.get("b") - before; got != 20 {
		t.Errorf("b served %d of 20", got)
	}
	// Healed, a is back after the cool-off and takes calls again.
	failing.Store(false)
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !a.Serving() {
			return errorf("a not back")
		}
		return nil
	})
	before = served.get("a")
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if st, _, _ := get(t, web, "http://pay/"); st != 200 {
			return errorf("got %d", st)
		}
		if served.get("a") == before {
			return errorf("a takes no calls")
		}
		return nil
	})
}

func TestPassiveHealthKeepsLastInstance(t *testing.T) {
	m := newMesh(t, outlierFile)
	var served counter
	var failing atomic.Bool
	failing.Store(true)
	var logs logSink
	a := m.agent("pay", "", flaky("a", &served, &failing), func(c *agent.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	web := m.client("web")
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if st, _, _ := get(t, web, "http://pay/"); st != 500 {
			t.Fatalf("got %d, want the service's 500", st)
		}
		if !logs.has("no other instance is serving") {
			return errorf("no ejection refused yet")
		}
		return nil
	})
	if !a.Serving() {
		t.Fatal("the last instance left its queue group")
	}
}
