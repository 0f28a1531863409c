package resilience

import (
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

// TestPlanBuild: what a policy compiles to: a retry executor only when a
// call may have more than one attempt, backoff and jitter only with a
// backoff, a bulkhead only with a positive limit.
func TestPlanBuild(t *testing.T) {
	for _, tc := range []struct {
		name, policy string

		attempts      int
		retry         bool
		backoff, max  time.Duration
		jitter        float64
		maxConcurrent int
	}{
		{"built-in", ``, 3, true, 25 * time.Millisecond, 250 * time.Millisecond, 0.2, 0},
		{"one attempt", `{retries: {attempts: 1}}`, 1, false, 25 * time.Millisecond, 250 * time.Millisecond, 0, 0},
		{"two attempts", `{retries: {attempts: 2}}`, 2, true, 25 * time.Millisecond, 250 * time.Millisecond, 0.2, 0},
		{"no backoff: no jitter", `{retries: {backoff: 0s, max_backoff: 0s, jitter: 50%}}`, 3, true, 0, 0, 0, 0},
		{"full jitter", `{retries: {jitter: 100%}}`, 3, true, 25 * time.Millisecond, 250 * time.Millisecond, 1, 0},
		{"bulkhead", `{bulkhead: {max_concurrent: 1}}`, 3, true, 25 * time.Millisecond, 250 * time.Millisecond, 0.2, 1},
		{"bulkhead off", `{bulkhead: {max_concurrent: 0}}`, 3, true, 25 * time.Millisecond, 250 * time.Millisecond, 0.2, 0},
	} {
		src := "version: 1\nservices:\n  orders: {}\n"
		if tc.policy != "" {
			src = "version: 1\nservices:\n  orders:\n    policy: " + tc.policy + "\n"
		}
		f, err := policies.Parse("mesh.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		m := &middleware{states: map[stateKey]any{}}
		pl := m.build(f.Policy("orders", ""), &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"})
		if pl.attempts != tc.attempts || (pl.retry != nil) != tc.retry || pl.backoff != tc.backoff || pl.maxBackoff != tc.max ||
			pl.jitter != tc.jitter || pl.maxConcurrent != tc.maxConcurrent || (pl.bulkhead != nil) != (tc.maxConcurrent > 0) {
			t.Errorf("%s: attempts %d, retry %v, backoff %v to %v, jitter %v, bulkhead %d (%v); want %d, %v, %v to %v, %v, %d",
				tc.name, pl.attempts, pl.retry != nil, pl.backoff, pl.maxBackoff, pl.jitter, pl.maxConcurrent, pl.bulkhead != nil,
				tc.attempts, tc.retry, tc.backoff, tc.max, tc.jitter, tc.maxConcurrent)
		}
	}
}
