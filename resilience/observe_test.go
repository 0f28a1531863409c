package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// observer records the changes of state it is told of.
type observer struct {
	mu      sync.Mutex
	changes []string
	list    func() []resilience.Breaker
}

func (o *observer) BreakerChanged(d resilience.Destination, from, to resilience.BreakerState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.changes = append(o.changes, fmt.Sprintf("%s %s>%s", d, from, to))
}

func (o *observer) ObserveBreakers(list func() []resilience.Breaker) { o.list = list }

func (o *observer) seen() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.changes, ", ")
}

// breakers lists the breakers in use as "dest=state", in a stable order.
func (o *observer) breakers() string {
	var s []string
	for _, b := range o.list() {
		s = append(s, b.Dest.String()+"="+b.State.String())
	}
	if len(s) > 1 && s[0] > s[1] {
		s[0], s[1] = s[1], s[0]
	}
	return strings.Join(s, " ")
}

const observedFile = `
version: 1
services:
  orders:
    policy:
      retries: {attempts: 1}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 2, open_for: OPEN_FOR, half_open_probes: 1}
`

// TestObserverSeesBreakers: the observer is told of each change of state
// of exactly the destination whose calls fail, and lists the breakers in
// use with their states; a breaker whose settings the mesh file changes,
// or turns off, is no longer listed.
func TestObserverSeesBreakers(t *testing.T) {
	src, write := meshFile(t, strings.Replace(observedFile, "OPEN_FOR", "100ms", 1))
	var failing atomic.Bool
	failing.Store(true)
	r := &recorder{answers: []func() (*pipeline.Reply, error){func() (*pipeline.Reply, error) {
		if failing.Load() {
			return replyStatus("500")()
		}
		return replyStatus("200")()
	}}}
	obs := &observer{}
	s := resilience.New(resilience.Config{Policies: src, Observer: obs})(r)
	if obs.list == nil {
		t.Fatal("New did not hand the observer its list")
	}
	call := func(subset string) error {
		_, err := s.Send(context.Background(), &pipeline.Call{Service: "orders", Subset: subset, Caller: "web",
			Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x"})
		return err
	}
	if got := obs.breakers(); got != "" {
		t.Errorf("before any call: breakers %q", got)
	}
	// v1 fails twice: open. v2 (answered by the same terminal, but only
	// once) stays closed.
	call("v1")
	call("v1")
	failing.Store(false)
	call("v2")
	if err := call("v1"); !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("v1 after two failures: %v, want circuit-open", err)
	}
	if got, want := obs.seen(), "orders@v1 closed>open"; got != want {
		t.Errorf("changes %q, want %q", got, want)
	}
	if got, want := obs.breakers(), "orders@v1=open orders@v2=closed"; got != want {
		t.Errorf("breakers %q, want %q", got, want)
	}
	// After open_for, the first call probes (half-open) and its success
	// closes the breaker.
	meshtest.CheckFor(t, 3*time.Second, 10*time.Millisecond, func() error { return call("v1") })
	if got, want := obs.seen(), "orders@v1 closed>open, orders@v1 open>half-open, orders@v1 half-open>closed"; got != want {
		t.Errorf("changes %q, want %q", got, want)
	}
	if got, want := obs.breakers(), "orders@v1=closed orders@v2=closed"; got != want {
		t.Errorf("breakers %q, want %q", got, want)
	}

	// Open v1 again, then change the breaker's settings: the open breaker
	// is no longer the one calls get, so it is not listed; the next call
	// makes the new one.
	failing.Store(true)
	call("v1")
	call("v1")
	if got, want := obs.breakers(), "orders@v1=open orders@v2=closed"; got != want {
		t.Errorf("breakers %q, want %q", got, want)
	}
	write(strings.Replace(observedFile, "OPEN_FOR", "1h", 1))
	if got := obs.breakers(); got != "" {
		t.Errorf("after the settings changed: breakers %q, want none", got)
	}
	call("v1")
	if got, want := obs.breakers(), "orders@v1=closed"; got != want {
		t.Errorf("after a call under the new settings: breakers %q, want %q", got, want)
	}
	write(strings.Replace(strings.Replace(observedFile, "OPEN_FOR", "1h", 1), "failure_ratio", "enabled: false, failure_ratio", 1))
	if got := obs.breakers(); got != "" {
		t.Errorf("breakers turned off: breakers %q, want none", got)
	}
}
