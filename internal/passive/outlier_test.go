package passive_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// shareFile ejects a failing pay instance after 5 calls, at most half of
// them failing, for longer than a test runs, under max_ejected MAX.
const shareFile = `
version: 1
services:
  web: {}
  pay:
    inbound:
      passive_health: {failure_ratio: 50%, window: 1s, min_requests: 5, cool_off: 1m, max_ejected: MAX}
`

// TestPassiveHealthMaxEjected runs four instances of pay, two of which
// start failing every call at the same moment, while a caller keeps
// calling. With max_ejected 25% exactly one of the failing instances
// leaves and the other stays, whichever decides first; with 50% both
// leave. The instances' state is sampled every half millisecond
// throughout: never more are out than the share allows and the healthy
// ones never leave; and of the 200 calls after the ejection none is
// refused by the mesh (a breaker open at the caller answered every call
// with circuit-open before the breaker counted calls: docs/decisions.md).
func TestPassiveHealthMaxEjected(t *testing.T) {
	for _, tc := range []struct {
		max  string
		want int // failing instances out
	}{
		{"25%", 1},
		{"50%", 2},
	} {
		t.Run(tc.max, func(t *testing.T) {
			testShare(t, tc.max, tc.want)
		})
	}
}

func testShare(t *testing.T, maxEjected string, want int) {
	m := agenttest.NewMesh(t, strings.Replace(shareFile, "MAX", maxEjected, 1))
	var (
		served agenttest.Counter
		logs   logSink
	)
	// a and b fail every call, and answer their fifth call, the one that
	// opens their breakers, at the same moment: they decide together.
	together := make(chan struct{})
	var arrived atomic.Int32
	names := []string{"a", "b", "c", "d"}
	pay := make([]*agent.Agent, len(names))
	for i, name := range names {
		h := agenttest.Named(name, &served)
		if i < 2 {
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(name)
				if served.Get(name) == 5 {
					if arrived.Add(1) == 2 {
						close(together)
					}
					select {
					case <-together:
					case <-time.After(5 * time.Second):
					}
				}
				http.Error(w, name+" failing", http.StatusInternalServerError)
			})
		}
		up := httptest.NewServer(h)
		t.Cleanup(up.Close)
		pay[i] = m.Agent("pay", "", nil, func(c *agent.Config) {
			c.Upstream = up.URL
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil)).With("instance", name)
		})
	}
	web := m.Client("web")
	out := func() (n int, which []string) {
		for i, a := range pay {
			if !a.Serving() {
				n++
				which = append(which, names[i])
			}
		}
		return n, which
	}

	// The sampler: the most instances out at one moment.
	var (
		mostOut    atomic.Int32
		mostSeen   atomic.Pointer[[]string]
		healthyOut atomic.Bool
		done       = make(chan struct{})
		wg         sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			n, which := out()
			if int32(n) > mostOut.Load() {
				mostOut.Store(int32(n))
				mostSeen.Store(&which)
			}
			if slices.Contains(which, "c") || slices.Contains(which, "d") {
				healthyOut.Store(true)
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()

	// The caller: four workers calling one after the other.
	type answer struct {
		status int
		kind   string
	}
	var (
		mu      sync.Mutex
		answers []answer
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				st, _, h := agenttest.Get(t, web, "http://pay/")
				mu.Lock()
				answers = append(answers, answer{st, h.Get(wire.HeaderError)})
				mu.Unlock()
			}
		}()
	}
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(answers)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(done)
			wg.Wait()
		}
	}
	defer stop()

	start := time.Now()
	meshtest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if n, which := out(); n != want || slices.Contains(which, "c") || slices.Contains(which, "d") {
			return fmt.Errorf("out: %v", which)
		}
		return nil
	})
	ejected := time.Since(start)
	// The calls go on: the failing instance left in keeps failing, opens
	// its breaker every few calls and asks to leave, and is refused.
	from := calls()
	meshtest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if n := calls() - from; n < 200 {
			return fmt.Errorf("%d calls since the ejection", n)
		}
		return nil
	})
	took := time.Since(start) - ejected
	stop()

	if n := mostOut.Load(); int(n) > want {
		t.Errorf("at one moment %d instances were out (%v); max_ejected %s allows %d", n, *mostSeen.Load(), maxEjected, want)
	}
	if healthyOut.Load() {
		t.Error("a healthy instance was out")
	}
	if n, which := out(); n != want || slices.Contains(which, "c") || slices.Contains(which, "d") {
		t.Errorf("at the end, out: %v; want %d of a and b", which, want)
	}
	mu.Lock()
	after := answers[from:]
	mu.Unlock()
	kinds := map[string]int{}
	for _, a := range after {
		if a.kind != "" {
			kinds[a.kind]++
		}
	}
	if len(kinds) > 0 {
		t.Errorf("after the ejection, calls the mesh refused: %v of %d", kinds, len(after))
	}
	refused := strings.Count(logs.String(), "staying in")
	t.Logf("ejected after %v; %d calls in the %v after (%.0f/s); a served %d, b %d, c %d, d %d; %d refusals",
		ejected.Round(time.Millisecond), len(after), took.Round(time.Millisecond), float64(len(after))/took.Seconds(),
		served.Get("a"), served.Get("b"), served.Get("c"), served.Get("d"), refused)
	if want == 1 && refused == 0 {
		t.Error("the failing instance left in never asked to leave")
	}
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
	m := agenttest.NewMesh(t, outlierFile)
	var served agenttest.Counter
	var failing, never atomic.Bool
	a := m.Agent("pay", "", flaky("a", &served, &failing))
	m.Agent("pay", "", flaky("b", &served, &never))
	web := m.Client("web")

	failing.Store(true)
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		agenttest.Get(t, web, "http://pay/")
		if a.Serving() {
			return errorf("a still serving after %d calls", served.Get("a"))
		}
		return nil
	})
	// The healthy sibling takes every call.
	before := served.Get("b")
	for range 20 {
		if st, body, _ := agenttest.Get(t, web, "http://pay/"); st != 200 || body != "b" {
			t.Fatalf("got %d %q while a is out, want b", st, body)
		}
	}
	if got := served.Get("b") - before; got != 20 {
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
	before = served.Get("a")
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if st, _, _ := agenttest.Get(t, web, "http://pay/"); st != 200 {
			return errorf("got %d", st)
		}
		if served.Get("a") == before {
			return errorf("a takes no calls")
		}
		return nil
	})
}

func TestPassiveHealthKeepsLastInstance(t *testing.T) {
	m := agenttest.NewMesh(t, outlierFile)
	var served agenttest.Counter
	var failing atomic.Bool
	failing.Store(true)
	var logs logSink
	a := m.Agent("pay", "", flaky("a", &served, &failing), func(c *agent.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	web := m.Client("web")
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if st, _, _ := agenttest.Get(t, web, "http://pay/"); st != 500 {
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
