package passive

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// Instance is the hold an inbound agent has on its queue groups, as
// passive health needs it. All three functions are required.
type Instance struct {
	// Claim marks the instance as leaving: from then on, until Withdraw,
	// its siblings' counts show it leaving at the returned place, while it
	// still serves. The place's time is later than every place this
	// instance has seen a sibling claim (see Place). It reports false,
	// doing nothing, if the instance is not serving or holds a claim
	// already.
	Claim func() (Place, bool)
	// Withdraw with d > 0 takes the claiming instance out of its queue
	// groups for d (calls already delivered are still served), keeping its
	// place, then puts it back if its health checks pass; it reports
	// whether it did (false if it holds no claim or is not serving). With
	// d <= 0 it ends the claim or the withdrawal at once: the instance is
	// back in.
	Withdraw func(reason string, d time.Duration) bool
	// Siblings asks discovery for every instance of the service, this one
	// included.
	Siblings func(ctx context.Context) ([]Sibling, error)
}

// siblingsTimeout bounds the counts of one decision.
const siblingsTimeout = 5 * time.Second

// Options is what [Middleware] reads.
type Options struct {
	// Service is the local service, whose inbound passive_health policy
	// applies.
	Service string
	// Policies is the live mesh file, read at every call. Nil: no passive
	// health.
	Policies *live.Source
	// Logger receives the decisions (ejections, refusals to leave).
	// Default slog.Default().
	Logger *slog.Logger
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o Options) current() *policies.File {
	if o.Policies == nil {
		return nil
	}
	f, _ := o.Policies.Current()
	return f
}

// Middleware returns the inbound middleware of outlier detection under
// the service's inbound passive_health policy (policies.PassiveHealth).
// It counts the local service's answers by wire's rule of whether a
// service failed, in its passive-health variant (wire.Outcome's
// PassiveHealth): a server failure (5xx, or a gRPC code gRPC maps to one)
// or a failure to reach the service (upstream-unavailable,
// upstream-refused, internal) is a failure; not implemented and out of
// time (501, 504 and their gRPC codes), timeouts and calls refused by the
// mesh count as neither; other answers are successes. The counts go to a failsafe-go circuit breaker
// over the policy's window. When it opens (failure_ratio reached over at
// least min_requests calls), the instance claims a place to leave, asks
// discovery for its siblings, and withdraws for cool_off only if [Allowed]
// keeps its place; otherwise it stays and counts afresh. Once out it asks
// again, and comes back at once if its place is no longer kept (a sibling
// whose answer the first count missed) or if that count fails. After cool_off it is back, its
// breaker half-open: min_requests calls decide whether it stays (closed)
// or is ejected again.
//
// Siblings that decide at the same moment agree: each claims before it
// counts, every count shows the claims, and places are ordered the same
// way in every count (see [Allowed] and [Place]), so exactly the allowed
// number leave, the earliest claims first.
//
// With a nil Claim, Withdraw or Siblings (the edge gateway) it does
// nothing.
func Middleware(cfg Options, inst Instance) pipeline.InboundMiddleware {
	if inst.Claim == nil || inst.Withdraw == nil || inst.Siblings == nil {
		return nil
	}
	ph := &passiveHealth{cfg: cfg, inst: inst}
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			d := ph.detector()
			if d == nil {
				return next.ServeCall(ctx, c)
			}
			d.cb.TryAcquirePermit() // moves an open breaker past its delay to half-open
			reply, err := next.ServeCall(ctx, c)
			if err == nil && reply.Streamed() {
				d.judgeAtEnd(reply)
				return reply, nil
			}
			d.judge(pipeline.OutcomeOf(c.Proto, reply, err))
			return reply, err
		})
	}
}

// judge counts a served call that ended with outcome o.
func (d *detector) judge(o wire.Outcome) {
	switch o.PassiveHealth() {
	case wire.Failed:
		d.cb.RecordFailure()
	case wire.Succeeded:
		d.cb.RecordSuccess()
	}
}

// judgeAtEnd counts a call answered by a stream when the stream ends, by
// the outcome its end makes (a gRPC stream's status is in its trailer).
func (d *detector) judgeAtEnd(reply *pipeline.Reply) { reply.OnEnd(d.judge) }

type passiveHealth struct {
	cfg  Options
	inst Instance
	mu   sync.Mutex
	cur  atomic.Pointer[detector]
}

// detector is the outlier detection under one passive_health policy.
type detector struct {
	ph       *passiveHealth
	policy   policies.PassiveHealth
	cb       circuitbreaker.CircuitBreaker[any]
	ejecting atomic.Bool
}

// detector returns the detector of the current policy, replacing the one
// of an older policy, or nil when there is none.
func (ph *passiveHealth) detector() *detector {
	f := ph.cfg.current()
	if f == nil {
		return nil
	}
	s := f.Services[ph.cfg.Service]
	if s == nil || s.Inbound == nil || s.Inbound.PassiveHealth == nil {
		return nil
	}
	p := *s.Inbound.PassiveHealth
	if d := ph.cur.Load(); d != nil && d.policy == p {
		return d
	}
	ph.mu.Lock()
	defer ph.mu.Unlock()
	if d := ph.cur.Load(); d != nil && d.policy == p {
		return d
	}
	d := &detector{ph: ph, policy: p}
	d.cb = circuitbreaker.NewBuilder[any]().
		WithFailureRateThreshold(p.FailureRatio.Fraction(), uint(max(p.MinRequests, 1)), p.Window.D()).
		WithDelay(p.CoolOff.D()).
		OnOpen(func(circuitbreaker.StateChangedEvent) { go d.eject() }).
		Build()
	ph.cur.Store(d)
	return d
}

// eject withdraws the instance for the cool-off if its siblings allow it,
// and otherwise closes the breaker so that counting starts afresh.
func (d *detector) eject() {
	if !d.ejecting.CompareAndSwap(false, true) {
		return
	}
	defer d.ejecting.Store(false)
	log := d.ph.cfg.logger().With("service", d.ph.cfg.Service)
	inst := d.ph.inst
	reason := fmt.Sprintf("passive health: failure ratio at least %v over %v", d.policy.FailureRatio, d.policy.Window)
	self, ok := inst.Claim()
	if !ok { // not serving: withdrawn by its health checks, or shutting down
		d.cb.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), siblingsTimeout)
	defer cancel()
	sibs, err := inst.Siblings(ctx)
	if err != nil {
		inst.Withdraw(reason, 0)
		log.Warn("passive health: cannot count siblings; staying in", "err", err)
		d.cb.Close()
		return
	}
	if why := d.refuse(sibs, self); why != "" {
		inst.Withdraw(reason, 0)
		log.Warn("passive health: failing, but staying in: "+why, countAttrs(sibs)...)
		d.cb.Close()
		return
	}
	if !inst.Withdraw(reason, d.policy.CoolOff.D()) {
		inst.Withdraw(reason, 0)
		d.cb.Close()
		return
	}
	log.Warn("passive health: withdrawn from the queue groups", append(countAttrs(sibs), "cool_off", d.policy.CoolOff.D())...)
	// The count above is complete unless an answer came too late for it;
	// a second one, with this instance out, catches that. This is the
	// instance's only check of its place while out (its siblings count it
	// out whatever it decides, see Allowed), so a second count that fails
	// brings it back, as a first one that fails keeps it in.
	ctx2, cancel2 := context.WithTimeout(context.Background(), siblingsTimeout)
	defer cancel2()
	after, err := inst.Siblings(ctx2)
	why := ""
	if err != nil {
		why = "cannot count siblings again: " + err.Error()
	} else {
		why = d.refuse(after, self)
	}
	if why != "" {
		log.Warn("passive health: back in at once: "+why, countAttrs(after)...)
		inst.Withdraw(reason, 0)
		d.cb.Close()
	}
}

// refuse says why the instance at place self must not be out, or "" if
// it may.
func (d *detector) refuse(sibs []Sibling, self Place) string {
	why, found := Allowed(sibs, d.policy.MaxEjected)[self.ID]
	switch {
	case !found:
		return "its own answer is missing from the count"
	case why != "":
		return why
	}
	return ""
}

// countAttrs are the log attributes of a count.
func countAttrs(sibs []Sibling) []any {
	var serving, ejected, leaving int
	for _, s := range sibs {
		if s.Serving {
			serving++
		}
		if s.Ejected {
			ejected++
		}
		if s.Leaving {
			leaving++
		}
	}
	return []any{"instances", len(sibs), "serving", serving, "ejected", ejected, "leaving", leaving}
}
