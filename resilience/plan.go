package resilience

import (
	"errors"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

// Hedging by percentile: the observed latencies of a destination are a
// moving quantile over about quantileAge calls, and hedging starts once
// quantileWarmup calls have been seen.
const (
	quantileAge    = 500
	quantileWarmup = 20
)

// errLocal is wrapped by the mesh errors the caller's own policies answer
// with (an open breaker, a full bulkhead): they are never retried and say
// nothing about the destination.
var errLocal = errors.New("resilience: refused by the caller's own policy")

// plan is the compiled policy of the calls to one destination that match
// one route, for one version of the mesh file: the failsafe-go executors,
// built once, and the numbers the gate needs.
type plan struct {
	dest string

	timeout        time.Duration // 0: the caller's deadline only
	attemptTimeout time.Duration // 0: none
	idempotent     bool          // the policy says so, whatever the method

	attempts            int
	backoff, maxBackoff time.Duration
	jitter              float64 // the jitter factor, 0 to 1
	budget              *retryBudget

	// retry runs the tries after the first; nil when attempts is 1.
	retry failsafe.Executor[*pipeline.Reply]
	// hedged runs one try of an idempotent call under the hedge policy
	// and the bulkhead; nil without a hedge.
	hedged failsafe.Executor[*pipeline.Reply]

	// bulkhead and breaker are the destination's, nil without one. A try
	// that is not hedged takes the bulkhead's permit directly (plan.try);
	// the breaker counts calls (callBreaker).
	maxConcurrent int
	bulkhead      bulkhead.Bulkhead[*pipeline.Reply]
	breaker       circuitbreaker.CircuitBreaker[*pipeline.Reply]
}

// build compiles p for calls to c's destination, reusing the destination
// state that has the same configuration.
func (m *middleware) build(p policies.Policy, c *pipeline.Call) *plan {
	dest := c.Dest()
	pl := &plan{
		dest:           dest,
		timeout:        p.Timeout.D(),
		attemptTimeout: p.AttemptTimeout.D(),
		idempotent:     *p.Idempotent,
	}

	r := p.Retries
	pl.attempts = max(*r.Attempts, 1)
	pl.backoff, pl.maxBackoff = r.Backoff.D(), max(r.MaxBackoff.D(), r.Backoff.D())
	ratio, floor := r.Budget.Fraction(), *r.MinPerSecond
	pl.budget = m.state(stateKey{kindBudget, dest, fmt.Sprint(ratio, floor)}, func() any {
		return newRetryBudget(ratio, floor)
	}).(*retryBudget)
	if pl.attempts > 1 {
		rb := retrypolicy.NewBuilder[*pipeline.Reply]().
			HandleIf(isAgain).
			WithMaxAttempts(pl.attempts).
			ReturnLastFailure()
		if pl.backoff > 0 {
			rb = rb.WithBackoff(pl.backoff, pl.maxBackoff)
			if j := r.Jitter.Fraction(); j > 0 {
				pl.jitter = min(j, 1)
				rb = rb.WithJitterFactor(min(j, 1))
			}
		}
		pl.retry = failsafe.With[*pipeline.Reply](rb.Build())
	}

	// A try passes the bulkhead, then the breaker (callBreaker): a call
	// the caller's own bulkhead refuses never reaches the breaker, so
	// local overload cannot count as the destination's success (or
	// failure).
	var try []failsafe.Policy[*pipeline.Reply]
	if b := p.Bulkhead; b != nil && *b.MaxConcurrent > 0 {
		pl.maxConcurrent = *b.MaxConcurrent
		pl.bulkhead = m.state(stateKey{kindBulkhead, dest, fmt.Sprint(pl.maxConcurrent)}, func() any {
			return bulkhead.New[*pipeline.Reply](uint(pl.maxConcurrent))
		}).(bulkhead.Bulkhead[*pipeline.Reply])
		try = append(try, pl.bulkhead)
	}
	if cfg := breakerConfig(p); cfg != "" {
		pl.breaker = m.state(stateKey{kindBreaker, dest, cfg}, func() any {
			return m.newBreaker(p.CircuitBreaker, destinationOf(c), policyOwner(c), cfg)
		}).(*breakerEntry).cb
	}
	if h := p.Hedge; h != nil {
		hp := m.hedgePolicy(h, ratio, dest)
		pl.hedged = failsafe.With(append([]failsafe.Policy[*pipeline.Reply]{hp}, try...)...)
	}
	return pl
}

// hedgePolicy returns the destination's hedge policy for h. Hedges share
// the retry budget's ratio, as failsafe-go's budget of concurrent hedges:
// hedges are at most that share of the calls in flight (with failsafe-go's
// floor of 3).
func (m *middleware) hedgePolicy(h *policies.Hedge, ratio float64, dest string) hedgepolicy.HedgePolicy[*pipeline.Reply] {
	extra := 1
	if h.Max != nil {
		extra = max(*h.Max, 1)
	}
	var delay time.Duration
	var pct float64
	if h.Delay != nil {
		delay = h.Delay.D()
	} else if h.Percentile != nil {
		pct = *h.Percentile
	}
	cfg := fmt.Sprint(delay, pct, extra, ratio)
	return m.state(stateKey{kindHedge, dest, cfg}, func() any {
		var b hedgepolicy.Builder[*pipeline.Reply]
		if pct > 0 && pct < 100 {
			b = hedgepolicy.NewBuilderWithDelayQuantile[*pipeline.Reply](pct/100, quantileAge, quantileWarmup)
		} else {
			b = hedgepolicy.NewBuilderWithDelayFunc[*pipeline.Reply](hedgeDelay(delay))
		}
		return b.WithMaxHedges(extra).
			CancelIf(hedgeWins).
			WithBudget(budget.NewBuilder().WithMaxRate(ratio).Build()).
			Build()
	}).(hedgepolicy.HedgePolicy[*pipeline.Reply])
}

// hedgeDelay is a fixed hedge delay, or no more hedges (-1) once what is
// left of the call's deadline is no longer than the delay: failsafe-go's
// hedge executor (v0.9.8) waits out its delay without watching the call's
// context, so a delay past the deadline would hold the call's answer
// (its timeout) until the delay ends (decision 121).
func hedgeDelay(delay time.Duration) failsafe.DelayFunc[*pipeline.Reply] {
	return func(exec failsafe.ExecutionAttempt[*pipeline.Reply]) time.Duration {
		if dl, ok := exec.Context().Deadline(); ok && time.Until(dl) <= delay {
			return -1
		}
		return delay
	}
}

// refusal turns the refusals of failsafe-go's bulkhead and breaker into
// the mesh errors the caller sees; other errors pass as they are.
func (p *plan) refusal(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, circuitbreaker.ErrOpen):
		msg := "the circuit breaker for " + p.dest + " is open"
		if p.breaker != nil {
			if d := p.breaker.RemainingDelay(); d > 0 {
				msg += fmt.Sprintf(" (probing again in %v)", d.Round(time.Millisecond))
			}
		}
		return &wire.Error{Kind: wire.KindCircuitOpen, Message: msg, Err: fmt.Errorf("%w: %w", errLocal, err)}
	case errors.Is(err, bulkhead.ErrFull):
		return &wire.Error{
			Kind:    wire.KindOverloaded,
			Message: fmt.Sprintf("this caller's own limit of %d calls in flight to %s is reached (bulkhead.max_concurrent)", p.maxConcurrent, p.dest),
			Err:     fmt.Errorf("%w: %w", errLocal, err),
		}
	}
	return err
}
