package resilience

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

// Config configures the middleware. The zero value applies the built-in
// policy (policies.BuiltinPolicy) to every call.
type Config struct {
	// Policies is the live mesh file; each call gets the policy of its
	// service and route in the version current when it starts. Nil: the
	// built-in policy.
	Policies *policies.Source
}

// New returns the outbound middleware that applies the mesh file's
// timeouts, retries, hedges, bulkheads and circuit breakers (steps 5-8 of
// package pipeline's order). The state it keeps (breakers, bulkheads,
// budgets, observed latencies) lives as long as the middleware: build one
// per agent or gateway and wrap its one pipeline with it.
func New(cfg Config) pipeline.OutboundMiddleware {
	m := &middleware{src: cfg.Policies, states: make(map[stateKey]any)}
	return func(next pipeline.Sender) pipeline.Sender {
		return &sender{m: m, next: next}
	}
}

// middleware is the state behind one New.
type middleware struct {
	src *policies.Source

	// plans caches the plans of the current mesh file; a new file starts
	// an empty cache.
	plans atomic.Pointer[planCache]

	// states holds each destination's breaker, bulkhead, budget and hedge
	// policy by destination, kind and configuration, so they outlive the
	// revisions that leave their configuration unchanged.
	mu     sync.Mutex
	states map[stateKey]any
}

type planCache struct {
	file  *policies.File
	plans sync.Map // planKey -> *plan
	n     atomic.Int32
}

// maxStates and maxPlans bound the caches: destinations come from callers
// (any host a service addresses), so a caller naming ever new services must
// not grow them without end. Past the bound a cache starts over; plans in
// use keep their state, and a destination seen again gets a fresh breaker
// and budget.
const (
	maxStates = 10000
	maxPlans  = 10000
)

type planKey struct {
	service, route, dest string
}

type stateKey struct {
	kind, dest, config string
}

// state returns the destination state under k, built by build the first
// time.
func (m *middleware) state(k stateKey, build func() any) any {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.states[k]; ok {
		return s
	}
	s := build()
	if len(m.states) >= maxStates {
		m.states = make(map[stateKey]any)
	}
	m.states[k] = s
	return s
}

// plan returns the plan of calls to c's destination that matched route.
func (m *middleware) plan(c *pipeline.Call, route string) *plan {
	var file *policies.File
	if m.src != nil {
		file, _ = m.src.Current()
	}
	pc := m.plans.Load()
	if pc == nil || pc.file != file || pc.n.Load() >= maxPlans {
		pc = &planCache{file: file}
		m.plans.Store(pc)
	}
	k := planKey{service: c.Service, route: route, dest: c.Dest()}
	if p, ok := pc.plans.Load(k); ok {
		return p.(*plan)
	}
	p := m.build(file.Policy(c.Service, route), k.dest)
	actual, loaded := pc.plans.LoadOrStore(k, p)
	if !loaded {
		pc.n.Add(1)
	}
	return actual.(*plan)
}

type sender struct {
	m    *middleware
	next pipeline.Sender
}

var _ pipeline.Sender = (*sender)(nil)

// Send sends c under the policy of its service and route.
func (s *sender) Send(ctx context.Context, c *pipeline.Call) (*nats.Msg, error) {
	route, _ := pipeline.RouteFrom(ctx)
	return s.m.plan(c, route).send(ctx, s.next, c)
}

// again marks a result the retry policy is to retry; plan.gate alone
// decides that. It never leaves the package.
type again struct{ err error }

func (a *again) Error() string { return "resilience: retry" }
func (a *again) Unwrap() error { return a.err }

func isAgain(_ *nats.Msg, err error) bool {
	var a *again
	return errors.As(err, &a)
}

// send runs one call through the plan: the overall timeout, then the retry
// policy, whose each try is a round (hedge, bulkhead, breaker) of one or
// more attempts.
func (p *plan) send(ctx context.Context, next pipeline.Sender, c *pipeline.Call) (*nats.Msg, error) {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	p.budget.recordCall()
	idempotent := p.idempotent || c.Idempotent()
	stats := pipeline.CallStatsFrom(ctx)
	var n atomic.Int32
	attempt := func(ctx context.Context, hedge bool) (*nats.Msg, error) {
		if stats != nil {
			stats.AddAttempt(hedge)
		}
		if p.attemptTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, p.attemptTimeout)
			defer cancel()
		}
		ctx = pipeline.WithAttempt(ctx, pipeline.Attempt{Number: int(n.Add(1)), Hedge: hedge})
		// Each attempt its own copy: concurrent hedges share no header map,
		// and a retry sends the body as it came.
		return next.Send(ctx, c.Clone())
	}
	// A mirror copy is sent once: shadow traffic never multiplies.
	mirror := pipeline.IsMirror(ctx)
	inner := p.inner
	if idempotent && p.hedged != nil && !mirror {
		inner = p.hedged
	}
	round := func(ctx context.Context) (*nats.Msg, error) {
		if inner == nil {
			return attempt(ctx, false)
		}
		msg, err := inner.WithContext(ctx).GetWithExecution(func(exec failsafe.Execution[*nats.Msg]) (*nats.Msg, error) {
			return attempt(exec.Context(), exec.IsHedge())
		})
		return msg, p.refusal(err)
	}
	if p.retry == nil || mirror {
		return finish(round(ctx))
	}
	msg, err := p.retry.WithContext(ctx).GetWithExecution(func(exec failsafe.Execution[*nats.Msg]) (*nats.Msg, error) {
		msg, err := round(exec.Context())
		if p.gate(ctx, exec.Attempts(), msg, err, idempotent) {
			if stats != nil {
				stats.AddRetry()
			}
			return msg, &again{err}
		}
		return msg, err
	})
	var a *again
	if errors.As(err, &a) {
		err = a.err
	}
	return finish(msg, err)
}

// gate decides whether the result of the attempts-th try is retried: only
// if it is retryable for this call, tries are left, the call's deadline
// leaves room for the backoff, and the destination's retry budget has a
// retry to spend (spent here).
func (p *plan) gate(ctx context.Context, attempts int, msg *nats.Msg, err error, idempotent bool) bool {
	if attempts >= p.attempts || !retryable(classify(msg, err), msg, idempotent) {
		return false
	}
	// Jitter may stretch the backoff by up to the factor: a retry that
	// would sleep past the deadline would turn the real answer into a
	// timeout.
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= time.Duration(float64(p.delay(attempts))*(1+p.jitter)) {
		return false
	}
	return p.budget.tryRetry()
}

// delay is the backoff before the retry that follows the attempts-th try,
// before jitter: the delay failsafe-go's backoff computes.
func (p *plan) delay(attempts int) time.Duration {
	d := p.backoff
	for i := 1; i < attempts && d < p.maxBackoff; i++ {
		d *= 2
	}
	return min(d, p.maxBackoff)
}

// finish returns the call's outcome, every failure as a *wire.Error (the
// retry and hedge policies return the context's error when the call's
// deadline passes or its caller goes away between attempts).
func finish(msg *nats.Msg, err error) (*nats.Msg, error) {
	if err == nil {
		return msg, nil
	}
	var e *wire.Error
	if errors.As(err, &e) {
		return nil, e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, &wire.Error{Kind: wire.KindTimeout, Message: "the call's deadline passed", Err: err}
	}
	return nil, wire.FromError(err)
}
