package resilience

import (
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/ratelimiter"
)

// budgetWindow is the period a retry budget counts calls and retries over,
// as Finagle's and Linkerd's retry budgets do (their default TTL is 10s).
const budgetWindow = 10 * time.Second

// budgetSlots is the number of slots budgetWindow is counted in: the
// window slides by a second at a time.
const budgetSlots = 10

// retryBudget bounds the retries to one destination to a share of the
// calls to it plus a floor per second: Finagle's RetryBudget, whose shape
// retries.budget and retries.min_per_second take.
//
// failsafe-go's budget package bounds something else: the share of retries
// and hedges among the executions in flight at one moment, with a floor of
// concurrent retries. A mesh caller sending one call at a time to a
// destination that fails every call has one execution in flight, so that
// budget allows every retry (it is under its floor), and the load on the
// failing destination triples. A budget over calls made in a time window
// is what stops retries from multiplying an outage, so it is kept here: the
// share is counted over a sliding window of budgetWindow, and the floor is
// failsafe-go's bursty rate limiter (min_per_second permits each second).
// The retry policy consults it before it schedules a retry (see plan.gate).
type retryBudget struct {
	ratio   float64
	reserve ratelimiter.RateLimiter[any] // nil: no floor

	mu    sync.Mutex
	slots [budgetSlots]budgetSlot
}

type budgetSlot struct {
	second  int64 // the Unix second the counts are for
	calls   int
	retries int // retries paid for by the share (not the floor)
}

func newRetryBudget(ratio float64, minPerSecond int) *retryBudget {
	b := &retryBudget{ratio: ratio}
	if minPerSecond > 0 {
		b.reserve = ratelimiter.NewBursty[any](uint(minPerSecond), time.Second)
	}
	return b
}

// slot returns the slot of the second now, emptied if it held an older one.
// b.mu must be held.
func (b *retryBudget) slot(now time.Time) *budgetSlot {
	sec := now.Unix()
	s := &b.slots[sec%budgetSlots]
	if s.second != sec {
		*s = budgetSlot{second: sec}
	}
	return s
}

// recordCall counts a call to the destination (once per call, not per
// attempt).
func (b *retryBudget) recordCall() {
	b.mu.Lock()
	b.slot(time.Now()).calls++
	b.mu.Unlock()
}

// tryRetry reports whether one more retry fits the budget, and if so
// spends it: from the share when the window's retries stay within ratio of
// its calls, else from the floor.
func (b *retryBudget) tryRetry() bool {
	now := time.Now()
	b.mu.Lock()
	var calls, retries int
	oldest := now.Unix() - budgetSlots + 1
	for i := range b.slots {
		if s := &b.slots[i]; s.second >= oldest {
			calls += s.calls
			retries += s.retries
		}
	}
	if float64(retries+1) <= b.ratio*float64(calls) {
		b.slot(now).retries++
		b.mu.Unlock()
		return true
	}
	b.mu.Unlock()
	return b.reserve != nil && b.reserve.TryAcquirePermit()
}
