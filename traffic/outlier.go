package traffic

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Siblings counts the instances of a service as discovery shows them,
// this one included.
type Siblings struct {
	// Total is the service's instances that serve calls (agents with an
	// inbound side), and Serving those of them in their queue groups now.
	Total, Serving int
	// SubsetServing is the instances of this one's subset in their queue
	// groups now (Serving when the instance has no subset).
	SubsetServing int
}

// Instance is the hold an inbound agent has on its queue groups, as
// passive health needs it.
type Instance struct {
	// Withdraw takes the instance out of its queue groups for d (calls
	// already delivered are still served), then puts it back if its
	// health checks pass; d <= 0 ends a withdrawal at once. It reports
	// whether it did: false if the instance was not serving. Required.
	Withdraw func(reason string, d time.Duration) bool
	// Siblings counts the service's instances through discovery. Required.
	Siblings func(ctx context.Context) (Siblings, error)
}

// siblingsTimeout bounds one discovery round.
const siblingsTimeout = 2 * time.Second

// PassiveHealth returns the inbound middleware of outlier detection under
// the service's inbound passive_health policy (policies.PassiveHealth).
// It counts the local service's answers: a 5xx reply, a gRPC UNKNOWN,
// INTERNAL, UNAVAILABLE or DATA_LOSS status, or a failure to reach the
// service (upstream-unavailable, upstream-refused, internal) is a
// failure; other answers are successes; timeouts and calls refused by the
// mesh count as neither. The counts go to a failsafe-go circuit breaker
// over the policy's window. When it opens (failure_ratio reached over at
// least min_requests calls), the instance asks discovery for its siblings
// and withdraws for cool_off only if, once it is out, its queue groups
// still have a serving instance and no more than max_ejected of the
// service's instances are out; otherwise it stays and counts afresh.
// After cool_off it is back, its breaker half-open: min_requests calls
// decide whether it stays (closed) or is ejected again.
//
// Two instances that eject at the same moment could together empty a
// queue group: each waits a random moment before asking, and checks again
// once out, coming back at once if its groups are empty.
//
// With a nil Withdraw or Siblings (the edge gateway) it does nothing.
func PassiveHealth(cfg Config, inst Instance) pipeline.InboundMiddleware {
	if inst.Withdraw == nil || inst.Siblings == nil {
		return nil
	}
	ph := &passiveHealth{cfg: cfg, inst: inst}
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*nats.Msg, error) {
			d := ph.detector()
			if d == nil {
				return next.ServeCall(ctx, c)
			}
			d.cb.TryAcquirePermit() // moves an open breaker past its delay to half-open
			reply, err := next.ServeCall(ctx, c)
			switch outcome(reply, err) {
			case failed:
				d.cb.RecordFailure()
			case succeeded:
				d.cb.RecordSuccess()
			}
			return reply, err
		})
	}
}

type passiveHealth struct {
	cfg  Config
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

type result int

const (
	neither result = iota
	succeeded
	failed
)

// outcome classifies the local service's answer for outlier detection.
func outcome(reply *nats.Msg, err error) result {
	if err != nil {
		switch wire.FromError(err).Kind {
		case wire.KindUpstream, wire.KindUpstreamRefused, wire.KindInternal:
			return failed
		}
		return neither
	}
	if reply == nil {
		return neither
	}
	if v := reply.Header.Get(wire.HeaderStatus); v != "" {
		if st, err := strconv.Atoi(v); err == nil && st >= 500 {
			return failed
		}
		return succeeded
	}
	if v := reply.Header.Get(grpcwire.HeaderGRPCStatus); v != "" {
		switch code, _ := strconv.Atoi(v); codes.Code(code) {
		case codes.Unknown, codes.Internal, codes.Unavailable, codes.DataLoss:
			return failed
		}
	}
	return succeeded
}

// eject withdraws the instance for the cool-off if its siblings allow it,
// and otherwise closes the breaker so that counting starts afresh.
func (d *detector) eject() {
	if !d.ejecting.CompareAndSwap(false, true) {
		return
	}
	defer d.ejecting.Store(false)
	log := d.ph.cfg.logger().With("service", d.ph.cfg.Service)
	// A random moment, so that siblings failing together do not all see
	// each other serving and leave at once.
	time.Sleep(rand.N(50 * time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), siblingsTimeout)
	defer cancel()
	sib, err := d.ph.inst.Siblings(ctx)
	if err != nil {
		log.Warn("passive health: cannot count siblings; staying in", "err", err)
		d.cb.Close()
		return
	}
	if why := d.refuse(sib); why != "" {
		log.Warn("passive health: failing, but staying in: "+why,
			"instances", sib.Total, "serving", sib.Serving, "subset_serving", sib.SubsetServing)
		d.cb.Close()
		return
	}
	reason := fmt.Sprintf("passive health: failure ratio at least %v over %v", d.policy.FailureRatio, d.policy.Window)
	if !d.ph.inst.Withdraw(reason, d.policy.CoolOff.D()) {
		d.cb.Close()
		return
	}
	log.Warn("passive health: withdrawn from the queue groups", "cool_off", d.policy.CoolOff.D(),
		"instances", sib.Total, "serving", sib.Serving-1)
	// Siblings deciding at the same moment may each have seen the others
	// serving: if the count now breaks a rule, come back at once (they do
	// too, and their next tries, at random moments, see each other).
	if after, err := d.ph.inst.Siblings(ctx); err == nil && (after.Serving == 0 || after.SubsetServing == 0 ||
		float64(after.Total-after.Serving) > d.policy.MaxEjected.Fraction()*float64(after.Total)) {
		log.Warn("passive health: siblings left at the same time; back in at once",
			"instances", after.Total, "serving", after.Serving)
		d.ph.inst.Withdraw(reason, 0)
		d.cb.Close()
	}
}

// refuse says why the instance must not leave, or "" if it may.
func (d *detector) refuse(sib Siblings) string {
	switch {
	case sib.Serving <= 1:
		return "no other instance is serving"
	case sib.SubsetServing <= 1:
		return "no other instance of its subset is serving"
	}
	out := sib.Total - sib.Serving + 1
	if float64(out) > d.policy.MaxEjected.Fraction()*float64(sib.Total) {
		return fmt.Sprintf("%d of %d instances would be out, over max_ejected %v", out, sib.Total, d.policy.MaxEjected)
	}
	return ""
}
