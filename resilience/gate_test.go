package resilience

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// TestGate: a retryable try is retried only while attempts are left and
// the deadline leaves room for the backoff stretched by the whole jitter.
func TestGate(t *testing.T) {
	unavailable := pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"503"}}})
	for _, tc := range []struct {
		name     string
		attempts int           // tries made
		deadline time.Duration // 0: none
		want     bool
	}{
		{"first of three", 1, 0, true},
		{"second of three", 2, 0, true},
		{"third of three", 3, 0, false},
		{"past the last", 4, 0, false},
		{"room for the backoff and its jitter", 1, 5 * time.Second, true},
		{"room for the backoff, not its jitter", 1, 1500 * time.Millisecond, false},
		{"no room for the backoff", 1, 500 * time.Millisecond, false},
	} {
		pl := &plan{attempts: 3, backoff: time.Second, maxBackoff: time.Second, jitter: 1, budget: newRetryBudget(1, 100)}
		ctx := context.Background()
		if tc.deadline > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tc.deadline)
			defer cancel()
		}
		if got := pl.gate(ctx, tc.attempts, unavailable, nil, true); got != tc.want {
			t.Errorf("%s: gate %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCachesBounded: the destination states and the plans start over once
// they hold their bound, not before.
func TestCachesBounded(t *testing.T) {
	m := &middleware{states: map[stateKey]any{}}
	for i := range maxStates - 1 {
		m.state(stateKey{kind: kindBudget, dest: fmt.Sprint("d", i)}, func() any { return i })
	}
	m.state(stateKey{kind: kindBudget, dest: "last"}, func() any { return 0 })
	if len(m.states) != maxStates {
		t.Fatalf("%d states after %d, want all kept", len(m.states), maxStates)
	}
	m.state(stateKey{kind: kindBudget, dest: "one more"}, func() any { return 0 })
	if len(m.states) != 1 {
		t.Errorf("%d states past the bound, want 1 (started over)", len(m.states))
	}

	m = &middleware{states: map[stateKey]any{}}
	call := func(i int) *pipeline.Call {
		return &pipeline.Call{Service: fmt.Sprint("s", i), Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}
	}
	plans := func() int { return len(*m.plans.Load().plans.Load()) }
	m.plan(call(0), "")
	full := make(map[planKey]*plan, maxPlans)
	for i := range maxPlans - 1 { // as the first maxPlans-1 calls would leave it
		full[planKey{service: fmt.Sprint("s", i)}] = m.plan(call(0), "")
	}
	m.plans.Load().plans.Store(&full)
	m.plan(call(maxPlans-1), "")
	if plans() != maxPlans {
		t.Fatalf("%d plans after %d, want all kept", plans(), maxPlans)
	}
	if p := m.plan(call(maxPlans-1), ""); p != m.plan(call(maxPlans-1), "") {
		t.Error("a destination's plan built again")
	}
	m.plan(call(maxPlans), "")
	if plans() != 1 {
		t.Errorf("%d plans past the bound, want 1 (started over)", plans())
	}
}
