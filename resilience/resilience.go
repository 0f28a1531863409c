package resilience

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// Config configures the middleware. The zero value applies the built-in
// policy (policies.BuiltinPolicy) to every call.
type Config struct {
	// Policies is the live mesh file; each call gets the policy of its
	// service and route in the version current when it starts. Nil: the
	// built-in policy.
	Policies *live.Source
	// Observer, when set, is told of every change of state of the
	// destinations' circuit breakers and can list them (see Observer).
	// Default nil: nobody watches.
	Observer Observer
}

// New returns the outbound middleware that applies the mesh file's
// timeouts, retries, hedges, bulkheads and circuit breakers, at their
// place in package pipeline's order of the middleware. The state it keeps
// (breakers, bulkheads, budgets, observed latencies) lives as long as the
// middleware: build one per agent or gateway and wrap its one pipeline
// with it.
func New(cfg Config) pipeline.OutboundMiddleware {
	m := &middleware{src: cfg.Policies, obs: cfg.Observer, states: make(map[stateKey]any)}
	if m.obs != nil {
		m.obs.ObserveBreakers(m.breakers)
	}
	return func(next pipeline.Sender) pipeline.Sender {
		return &sender{m: m, next: next}
	}
}

// middleware is the state behind one New.
type middleware struct {
	src *live.Source
	obs Observer // nil: none

	// plans caches the plans of the current mesh file; a new file starts
	// an empty cache.
	plans atomic.Pointer[planCache]

	// states holds each destination's breaker, bulkhead, budget and hedge
	// policy by destination, kind and configuration, so they outlive the
	// revisions that leave their configuration unchanged.
	mu     sync.Mutex
	states map[stateKey]any

	// cfgs are the breaker configurations each service has under
	// cfgFile, for listing the breakers in use (observe.go).
	cfgMu   sync.Mutex
	cfgFile *policies.File
	cfgs    map[string]map[string]bool
}

// planCache holds the plans of one mesh file. Every call looks its plan
// up, so the map is copied on write and read without a lock; a plan is
// added once per (service, subset, subject, route) of the file.
type planCache struct {
	file  *policies.File
	mu    sync.Mutex // serializes writers
	plans atomic.Pointer[map[planKey]*plan]
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

// planKey is the destination and route of a call as the call carries
// them, so a lookup builds no string (Call.Dest would).
type planKey struct {
	service, subset, subject, egress, route string
}

type stateKey struct {
	kind, dest, config string
}

// The kinds of destination state.
const (
	kindBudget   = "budget"
	kindBulkhead = "bulkhead"
	kindBreaker  = "breaker" // a *breakerEntry
	kindHedge    = "hedge"
)

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
	if pc == nil || pc.file != file {
		fresh := &planCache{file: file}
		if m.plans.CompareAndSwap(pc, fresh) {
			pc = fresh
		} else {
			pc = m.plans.Load()
		}
	}
	k := planKey{service: c.Service, subset: c.Subset, subject: c.Subject, egress: c.Egress, route: route}
	if plans := pc.plans.Load(); plans != nil {
		if p, ok := (*plans)[k]; ok {
			return p
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	old := pc.plans.Load()
	if old != nil {
		if p, ok := (*old)[k]; ok {
			return p
		}
	}
	var p *plan
	if c.Egress != "" {
		p = m.build(pc.file.EgressPolicy(c.Egress), c)
	} else {
		p = m.build(pc.file.Policy(c.Service, route), c)
	}
	plans := make(map[planKey]*plan, 1)
	if old != nil && len(*old) < maxPlans {
		plans = make(map[planKey]*plan, len(*old)+1)
		for k, v := range *old {
			plans[k] = v
		}
	}
	plans[k] = p
	pc.plans.Store(&plans)
	return p
}

type sender struct {
	m    *middleware
	next pipeline.Sender
}

var _ pipeline.Sender = (*sender)(nil)

// Send sends c under the policy of its service and route, or of its
// external host. A call to an external host the mesh file does not list
// (policies.EgressOther) is sent as it is, once, within its deadline: a
// breaker, a bulkhead or a retry budget shared by every unlisted host
// would let one of them fail calls to the others.
func (s *sender) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	if c.Egress == policies.EgressOther {
		return s.next.Send(ctx, c)
	}
	route, _ := pipeline.RouteFrom(ctx)
	return s.m.plan(c, route).send(ctx, s.next, c)
}

// again marks a result the retry policy is to retry; plan.gate alone
// decides that. It never leaves the package.
type again struct{ err error }

func (a *again) Error() string { return "resilience: retry" }
func (a *again) Unwrap() error { return a.err }

func isAgain(_ *pipeline.Reply, err error) bool {
	var a *again
	return errors.As(err, &a)
}

// send runs one call through the plan: the overall timeout, then the retry
// policy, whose each try is a round (hedge, bulkhead) of one or more
// attempts; the call as a whole goes through the destination's breaker
// (callBreaker), its first attempt taking the permit.
//
// A call that is not hedged makes its first try outside any failsafe-go
// executor, through the bulkhead's permit directly (plan.try), and
// enters the retry policy only when that try is to be
// retried: most calls succeed at once, and an executor costs dozens of
// allocations per call. The retry policy then replays the first try's
// result as its first execution, so its attempt count, backoff and
// budget are those of a call that ran under it from the start.
func (p *plan) send(ctx context.Context, next pipeline.Sender, c *pipeline.Call) (*pipeline.Reply, error) {
	idempotent := p.idempotent || c.Idempotent()
	if p.idempotent && !c.Idempotent() {
		// The pipeline asks the callee to confirm no call it may repeat
		// (pipeline.IsIdempotent).
		ctx = pipeline.WithIdempotent(ctx)
	}
	// A mirror copy is sent once: shadow traffic never multiplies. So is
	// a call whose body can be read once only (a stream without a
	// replay): no other attempt could send it again.
	once := pipeline.IsMirror(ctx) || !c.Body.Replayable()
	hedged := idempotent && p.hedged != nil && !once
	// The route's timeout is a context of its own only when it ends the
	// call sooner than its deadline does (the outbound pipeline always
	// sets one). Hedged calls always get one: its cancellation on return
	// stops the hedges still running.
	if p.timeout > 0 && (hedged || !deadlineWithin(ctx, p.timeout)) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	p.budget.recordCall()
	if hedged {
		g := &callBreaker{cb: p.breaker, mu: new(sync.Mutex)}
		defer g.abandon()
		msg, err := p.sendHedged(ctx, next, c, g)
		g.done(msg, err)
		return msg, err
	}
	g := callBreaker{cb: p.breaker}
	defer g.abandon()
	// The first attempt sends c itself: a Sender never modifies its call,
	// and no other attempt runs beside it. Retries send clones.
	msg, err := p.try(ctx, next, c, 1, &g)
	if p.retry == nil || once {
		g.done(msg, err)
		return finish(msg, err)
	}
	// As failsafe-go's retry policy: a call whose context ended is over,
	// whatever its try returned.
	if ctx.Err() != nil {
		g.done(msg, err)
		drop(msg)
		return finish(nil, ctx.Err())
	}
	if !p.gate(ctx, 1, msg, err, idempotent) {
		g.done(msg, err)
		return finish(msg, err)
	}
	// The retries' closure takes the breaker's hold to the heap: a copy,
	// so that the first try alone keeps it on the stack.
	h := &callBreaker{cb: g.cb, held: g.held, probe: g.probe, answered: g.answered, last: g.last, lastErr: g.lastErr}
	g.held = false // h holds the permit now
	defer h.abandon()
	msg, err = p.retryAfter(ctx, next, c, idempotent, msg, err, h)
	h.done(msg, err)
	return msg, err
}

// retryAfter runs the retries of a call that is not hedged, under the
// retry policy, once its first try (msg, err) is to be retried. (A
// function of its own: the variables its closure captures move to the
// heap, which the first try alone must not pay for.)
func (p *plan) retryAfter(ctx context.Context, next pipeline.Sender, c *pipeline.Call, idempotent bool, first *pipeline.Reply, firstErr error, g *callBreaker) (*pipeline.Reply, error) {
	last := first
	msg, err := p.retried(ctx, func(exec failsafe.Execution[*pipeline.Reply]) (*pipeline.Reply, error) {
		n := exec.Attempts()
		if n == 1 {
			return first, &again{firstErr} // the first try, made by send
		}
		msg, err := p.tryAgain(exec.Context(), next, c, n, g)
		last = msg
		return p.verdict(ctx, n, msg, err, idempotent)
	})
	// failsafe-go answers ctx's error for a call whose context ended,
	// whatever its last try returned: a streamed reply so dropped is
	// closed, so its stream ends and its observers hear of it.
	if last != msg {
		drop(last)
	}
	return msg, err
}

// drop closes the stream of a streamed reply the call does not answer
// with (Close ends it and tells its OnEnd observers, once).
func drop(r *pipeline.Reply) {
	if r.Streamed() {
		r.Body.Stream.Close()
	}
}

// tryAgain is the n-th try (n > 1) of a call that is not hedged, with a
// copy of c whose body reads again from its start (pipeline.Call.Replay),
// closed once the try has ended. A body that cannot be replayed fails the
// try (such a call is never retried: see send).
func (p *plan) tryAgain(ctx context.Context, next pipeline.Sender, c *pipeline.Call, n int, g *callBreaker) (*pipeline.Reply, error) {
	d, err := c.Replay()
	if err != nil {
		return nil, &wire.Error{Kind: wire.KindInternal, Message: "retrying the call: " + err.Error(), Err: err}
	}
	msg, err := p.try(ctx, next, d, n, g)
	d.CloseBody(msg, err)
	return msg, err
}

// retried runs fn under the retry policy and returns the call's outcome,
// a last try marked again by verdict unwrapped.
func (p *plan) retried(ctx context.Context, fn func(failsafe.Execution[*pipeline.Reply]) (*pipeline.Reply, error)) (*pipeline.Reply, error) {
	msg, err := p.retry.WithContext(ctx).GetWithExecution(fn)
	var a *again
	if errors.As(err, &a) {
		err = a.err
	}
	return finish(msg, err)
}

// verdict returns the result of the n-th try, marked again if gate has it
// retried.
func (p *plan) verdict(ctx context.Context, n int, msg *pipeline.Reply, err error, idempotent bool) (*pipeline.Reply, error) {
	if p.gate(ctx, n, msg, err, idempotent) {
		return msg, &again{err}
	}
	return msg, err
}

// deadlineWithin reports whether ctx ends within d from now.
func deadlineWithin(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) <= d
}

// try is one try of a call that is not hedged: the bulkhead's permit,
// then the call's way through the breaker (g), then the attempt.
func (p *plan) try(ctx context.Context, next pipeline.Sender, c *pipeline.Call, n int, g *callBreaker) (*pipeline.Reply, error) {
	if p.bulkhead != nil {
		if err := p.bulkhead.AcquirePermitWithMaxWait(ctx, 0); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, p.refusal(err)
		}
		defer p.bulkhead.ReleasePermit()
	}
	if !g.enter() {
		return nil, p.refusal(circuitbreaker.ErrOpen)
	}
	msg, err := p.attempt(ctx, next, c, pipeline.Attempt{Number: n})
	g.sent(msg, err)
	return msg, err
}

// callBreaker is one call's way through its destination's breaker, which
// counts calls, not attempts: the call's first attempt that passes the
// bulkhead takes a permit (an open breaker refuses it, and so the call),
// the call's other attempts go with it, and the call's outcome, after its
// retries and hedges, is recorded once (see done; a call that panics
// below the middleware records a failure, see abandon). The destination is a queue group:
// a retry goes to whichever instance the broker picks, so a call whose
// first attempt met one failing instance and whose retry was answered by
// another did not fail, and must not count against the group (a minority
// of failing instances that passive health keeps in would otherwise open
// the breaker for every instance; docs/decisions.md). The zero value, and
// one without a breaker, lets every attempt through.
type callBreaker struct {
	cb circuitbreaker.CircuitBreaker[*pipeline.Reply]

	mu    *sync.Mutex // set for hedged calls, whose attempts run at once
	held  bool        // the call holds a permit
	probe bool        // the permit is a half-open breaker's
	// answered is set once an attempt ended other than cancelled; last
	// and lastErr are the last such attempt's result, for a call that
	// ends refused by the caller's own policy or cancelled.
	answered bool
	last     *pipeline.Reply
	lastErr  error
}

// enter reports whether an attempt may be sent.
func (g *callBreaker) enter() bool {
	if g.cb == nil {
		return true
	}
	g.lock()
	defer g.unlock()
	if !g.held {
		g.held = g.cb.TryAcquirePermit()
		g.probe = g.held && g.cb.IsHalfOpen()
	}
	return g.held
}

// lock and unlock guard a hedged call's hold (a mutex in the struct would
// take every call's hold to the heap).
func (g *callBreaker) lock() {
	if g.mu != nil {
		g.mu.Lock()
	}
}

func (g *callBreaker) unlock() {
	if g.mu != nil {
		g.mu.Unlock()
	}
}

// sent notes the result of an attempt sent, unless it was cancelled (the
// caller went away, or a hedge lost): that says nothing of the
// destination.
func (g *callBreaker) sent(msg *pipeline.Reply, err error) {
	if g.cb == nil || errors.Is(err, context.Canceled) {
		return
	}
	g.lock()
	g.answered, g.last, g.lastErr = true, msg, err
	g.unlock()
}

// done records the call's outcome (msg, err) on the breaker, failures by
// destinationFailed. A call that ended refused by the caller's own policy
// (its bulkhead) or cancelled (its caller went away, during an attempt or
// a retry's backoff) counts by its last attempt that was not cancelled; if
// it has none, the call is no evidence and records nothing. failsafe-go
// (v0.9.8) cannot give a permit back without recording, and a half-open
// breaker's permit not given back would keep it half-open for good: a
// probe with no evidence, while the breaker is still half-open, records a
// failure instead (it opens again for open_for, then probes afresh).
func (g *callBreaker) done(msg *pipeline.Reply, err error) {
	if g.cb == nil {
		return
	}
	g.lock()
	defer g.unlock()
	if !g.held {
		return
	}
	g.held = false
	if errors.Is(err, errLocal) || errors.Is(err, context.Canceled) {
		if !g.answered {
			if g.probe && g.cb.IsHalfOpen() {
				g.cb.RecordFailure()
			}
			return
		}
		msg, err = g.last, g.lastErr
	}
	if err == nil && msg.Streamed() {
		// A stream's outcome is its end's (a gRPC stream's status comes
		// in its trailer): the call holds its permit until then.
		recordAtEnd(g.cb, msg)
		return
	}
	record(g.cb, destinationFailed(msg, err))
}

// record records a call on cb, a failure or a success.
func record(cb circuitbreaker.CircuitBreaker[*pipeline.Reply], failed bool) {
	if failed {
		cb.RecordFailure()
	} else {
		cb.RecordSuccess()
	}
}

// recordAtEnd records a call answered by a stream when the stream ends, by
// the outcome its end makes. A stream its caller gave up midway is not
// held against the destination, which answered.
func recordAtEnd(cb circuitbreaker.CircuitBreaker[*pipeline.Reply], reply *pipeline.Reply) {
	reply.OnEnd(func(o wire.Outcome) { record(cb, o.DestinationFailed()) })
}

// abandon records a failure for a call that still holds its permit as it
// returns: one that did not reach done because a panic below the
// middleware is unwinding through it (the panic goes on). Without it a
// half-open breaker's probe would never give its permit back.
func (g *callBreaker) abandon() {
	if g.cb == nil {
		return
	}
	g.lock()
	defer g.unlock()
	if g.held {
		g.held = false
		g.cb.RecordFailure()
	}
}

// attempt sends c as attempt a: under the attempt timeout, numbered on
// its context.
func (p *plan) attempt(ctx context.Context, next pipeline.Sender, c *pipeline.Call, a pipeline.Attempt) (*pipeline.Reply, error) {
	if p.attemptTimeout > 0 && !deadlineWithin(ctx, p.attemptTimeout) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.attemptTimeout)
		defer cancel()
	}
	return next.Send(pipeline.WithAttempt(ctx, a), c)
}

// sendHedged runs a hedged call: the retry policy, whose each try is the
// hedge policy's round of attempts through the bulkhead, all failsafe-go
// executors, each attempt through the call's way through the breaker (g).
func (p *plan) sendHedged(ctx context.Context, next pipeline.Sender, c *pipeline.Call, g *callBreaker) (*pipeline.Reply, error) {
	var n atomic.Int32
	var streams losers
	round := func(ctx context.Context) (*pipeline.Reply, error) {
		msg, err := p.hedged.WithContext(ctx).GetWithExecution(func(exec failsafe.Execution[*pipeline.Reply]) (*pipeline.Reply, error) {
			if !g.enter() {
				return nil, circuitbreaker.ErrOpen
			}
			// Each attempt its own copy: concurrent hedges share no
			// header map, and each but the first reads the body again.
			a := pipeline.Attempt{Number: int(n.Add(1)), Hedge: exec.IsHedge()}
			d := c.Clone()
			if a.Number > 1 {
				var err error
				if d, err = c.Replay(); err != nil {
					return nil, &wire.Error{Kind: wire.KindInternal, Message: "hedging the call: " + err.Error(), Err: err}
				}
			}
			msg, err := p.attempt(exec.Context(), next, d, a)
			if a.Number > 1 {
				d.CloseBody(msg, err)
			}
			g.sent(msg, err)
			streams.add(msg, err)
			return msg, err
		})
		return msg, p.refusal(err)
	}
	var msg *pipeline.Reply
	var err error
	if p.retry == nil {
		msg, err = finish(round(ctx))
	} else {
		msg, err = p.retried(ctx, func(exec failsafe.Execution[*pipeline.Reply]) (*pipeline.Reply, error) {
			msg, err := round(exec.Context())
			return p.verdict(ctx, exec.Attempts(), msg, err, true)
		})
	}
	streams.answered(msg)
	return msg, err
}

// losers closes the streamed replies of a hedged call's attempts that are
// not its answer: each attempt's reply is the hedge's to discard but the
// one the call returns, and a stream no one reads or closes would never
// end (nor tell its outcome to the telemetry of its attempt).
type losers struct {
	mu     sync.Mutex
	done   bool
	answer *pipeline.Reply
	open   []*pipeline.Reply
}

// add notes an attempt's result; once the call has its answer, another
// streamed reply is closed at once.
func (l *losers) add(msg *pipeline.Reply, err error) {
	if err != nil || !msg.Streamed() {
		return
	}
	l.mu.Lock()
	if !l.done {
		l.open = append(l.open, msg)
		l.mu.Unlock()
		return
	}
	answer := l.answer
	l.mu.Unlock()
	if msg != answer {
		msg.Body.Stream.Close()
	}
}

// answered closes the streamed replies noted so far but answer.
func (l *losers) answered(answer *pipeline.Reply) {
	l.mu.Lock()
	l.done, l.answer = true, answer
	open := l.open
	l.open = nil
	l.mu.Unlock()
	for _, r := range open {
		if r != answer {
			r.Body.Stream.Close()
		}
	}
}

// gate decides whether the result of the attempts-th try is retried: only
// if it is retryable for this call, tries are left, the call's deadline
// leaves room for the backoff, and the destination's retry budget has a
// retry to spend (spent here).
func (p *plan) gate(ctx context.Context, attempts int, msg *pipeline.Reply, err error, idempotent bool) bool {
	if attempts >= p.attempts || !retryable(msg, err, idempotent) {
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
func finish(msg *pipeline.Reply, err error) (*pipeline.Reply, error) {
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
