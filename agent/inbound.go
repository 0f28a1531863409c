package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	"github.com/natsmesh/natsmesh/internal/chain"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	siblings "github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/meshgrpc"
	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// HeaderCaller is set on every inbound HTTP request to the name of the
// calling service, taken from the subject (which the broker's permissions
// bind to the caller's NATS user), never from what the caller sent.
const HeaderCaller = wire.HeaderCaller

// inbound holds the agent's service in its queue groups and feeds the
// inbound pipeline.
type inbound struct {
	a *Agent

	httpTransport *http.Transport
	httpUpstream  *meshhttp.Upstream // in front of httpTransport, once made
	limits        pipeline.Limits    // the agent's (limitsNow), made once
	handler       http.Handler       // in-process HTTP service
	grpcServer    *meshgrpc.Server   // in-process gRPC services
	grpcMu        sync.Mutex
	grpcCC        *grpc.ClientConn
	grpcClosed    bool

	// dispatch is the inbound pipeline, built by start once the in-process
	// handlers are known.
	dispatch *pipeline.Inbound
	// unobserve removes the dispatch's limit from the metrics.
	unobserve func()
	// noGRPCHealth is set once a gRPC upstream answered that it has no
	// health service (logged once).
	noGRPCHealth atomic.Bool
	// refused is signalled when a call found the upstream refusing
	// connections, for the health loop to withdraw at once.
	refused chan struct{}

	firstServing chan struct{}
	firstOnce    sync.Once

	withdrawMu sync.Mutex // one withdrawal at a time
	mu         sync.Mutex
	subs       []*nats.Subscription
	draining   []<-chan nats.SubStatus // subscriptions left but maybe not yet closed
	closed     bool                    // no more subscribing
	healthErr  error

	// refusal is set while the broker refuses the instance's queue
	// subscriptions (its user's permissions lack them: a subset the mesh
	// file does not declare, another service's credentials). The
	// instance then neither serves nor is ready, and asks again after
	// refusalRetry (retryRefused), not before: the refusal is permanent
	// until the broker's configuration changes. Under mu.
	refusal       error
	refusalLogged bool          // said, at Error, since the last success
	retry         *time.Timer   // retryRefused, armed by a refusal
	refusedCh     chan struct{} // closed at the first refusal, for Ready
	refusedOnce   sync.Once
	refusals      atomic.Int64 // refused attempts (tests)

	// ej is the instance's side of passive health (package
	// internal/siblings): its claims, its cool-offs out of the queue
	// groups, and the counts of its siblings.
	ej *siblings.Member
	// stall tells a frozen upstream from a slow one.
	stall stallWatch
}

func newInbound(a *Agent) *inbound {
	in := &inbound{
		a:             a,
		firstServing:  make(chan struct{}),
		refusedCh:     make(chan struct{}),
		refused:       make(chan struct{}, 1),
		httpTransport: a.upstreamTransport(),
		limits:        a.limitsNow,
	}
	in.stall.in = in
	in.ej = siblings.New(siblings.Config{
		Conn: a.nc, Service: a.cfg.Service, Subset: a.cfg.Subset, ID: a.ID,
		Inbound: in.enabled, Serving: in.serving, Leave: in.withdraw, Return: in.restore,
		Ejected: func(out bool) { a.cfg.Telemetry.SetEjected(a.cfg.Service, a.cfg.Subset, out) },
		Logger:  a.log,
	})
	return in
}

// enabled reports whether there is anything to serve inbound.
func (in *inbound) enabled() bool {
	return in.a.upstream != nil || in.handler != nil || in.grpcServer != nil
}

// handlers returns the local service's kinds of handler by protocol.
func (in *inbound) handlers() pipeline.Protocols {
	p := pipeline.Protocols{Service: in.a.cfg.Service}
	limits := in.limits
	switch {
	case in.handler != nil:
		p.HTTP = &meshhttp.Handler{Handler: in.handler, Limits: limits}
	case in.a.upstream != nil && !upstreamGRPC(in.a.upstream):
		in.httpUpstream = &meshhttp.Upstream{Base: in.a.upstream, Transport: in.httpTransport, Limits: limits, OnRefused: in.onRefused}
		p.HTTP = in.httpUpstream
	}
	switch {
	case in.grpcServer != nil:
		p.GRPC = in.grpcServer
	case in.a.upstream != nil && upstreamGRPC(in.a.upstream):
		p.GRPC = pipeline.HandlerFunc(in.grpcUpstream)
	}
	return p
}

// onRefused tells the health loop that the upstream refused a connection.
func (in *inbound) onRefused(error) {
	select {
	case in.refused <- struct{}{}:
	default:
	}
}

func (in *inbound) serving() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.subs) > 0
}

func (in *inbound) lastHealthError() string {
	if err := in.refusalErr(); err != nil {
		return err.Error()
	}
	if r := in.ej.Ejected(); r != "" { // before in.mu: in.ej's lock is taken first
		return r
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.healthErr == nil {
		return "no health check has passed yet"
	}
	return "last health check: " + in.healthErr.Error()
}

// grpcConn is the client connection to a gRPC upstream, dialed once.
func (in *inbound) grpcConn() (*grpc.ClientConn, error) {
	in.grpcMu.Lock()
	defer in.grpcMu.Unlock()
	if in.grpcClosed {
		return nil, ErrClosed
	}
	if in.grpcCC == nil {
		cc, err := grpc.NewClient("passthrough:///"+in.a.upstream.Host,
			grpc.WithTransportCredentials(in.a.grpcCredentials()),
			// Fixed windows turn off grpc-go's bandwidth-delay probing, a
			// PING per burst of data: on loopback, one per call.
			grpc.WithInitialWindowSize(grpcWindow),
			grpc.WithInitialConnWindowSize(grpcWindow))
		if err != nil {
			return nil, err
		}
		in.grpcCC = cc
	}
	return in.grpcCC, nil
}

// prepare builds the inbound pipeline, once the in-process handlers are
// known.
func (in *inbound) prepare() error {
	var h pipeline.Handler = in.handlers()
	if in.a.upstream != nil {
		h = in.stall.wrap(h)
	}
	d, err := pipeline.NewInbound(in.a.nc, pipeline.InboundConfig{
		Service:       in.a.cfg.Service,
		Handler:       h,
		Middleware:    append([]pipeline.InboundMiddleware{in.a.countEndpoints}, chain.Inbound(in.a.chainOptions(), in.a.cfg.Inbound...)...),
		MaxConcurrent: in.a.cfg.MaxConcurrent,
		Timeout:       in.a.cfg.Timeout,
		StreamIdle:    in.a.cfg.StreamIdle,
		ClockSkew:     in.a.cfg.ClockSkew,
		Logger:        in.a.log,
	})
	if err != nil {
		return err
	}
	in.dispatch = d
	in.unobserve = in.a.cfg.Telemetry.ObserveAdmission(in.a.cfg.Service, in.a.cfg.Subset, d)
	in.watchRefusals()
	return nil
}

// run subscribes at once when there is no health check, and otherwise
// starts the health loop, which subscribes once the service is healthy.
func (in *inbound) run(ctx context.Context) {
	check := in.a.checker()
	if check != nil && in.a.upstream != nil && in.a.cfg.Health.Check == nil {
		check = in.stall.check(check)
	}
	if check == nil {
		if err := in.subscribe(); err != nil && !errors.Is(err, errRefused) {
			in.a.log.Error("subscribing", "err", err)
		}
		return
	}
	in.a.cfg.Telemetry.SetHealthy(in.a.cfg.Service, in.a.cfg.Subset, false)
	go in.healthLoop(ctx, check)
}

// healthLoop runs the checks and moves the instance in and out of its queue
// groups. Until the first check passes it polls faster than Interval, so an
// instance starts serving as soon as its service is up. A call that found
// the upstream refusing connections runs a check at once, and a failed
// check then withdraws the instance without waiting for FailThreshold: a
// refused connection is evidence the service is gone, not a slow answer.
func (in *inbound) healthLoop(ctx context.Context, check func(context.Context) error) {
	hc := in.a.cfg.Health
	var passes, fails int
	served := false
	startupPoll := min(hc.Interval, 100*time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		urgent := false
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-in.refused:
			urgent = true
			timer.Stop()
		}
		cctx, cancel := context.WithTimeout(ctx, hc.Timeout)
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		in.mu.Lock()
		in.healthErr = err
		in.mu.Unlock()
		in.a.cfg.Telemetry.SetHealthy(in.a.cfg.Service, in.a.cfg.Subset, err == nil)
		serving := in.serving()
		served = served || serving // retryRefused may have subscribed
		if err == nil {
			fails = 0
			passes++
			if !serving && in.ej.Ejected() == "" && (!served || passes >= hc.PassThreshold) {
				if err := in.subscribe(); errors.Is(err, errRefused) {
					// Said once; asked again by retryRefused.
				} else if err != nil {
					in.a.log.Error("subscribing", "err", err)
				} else {
					if served {
						in.a.log.Info("service healthy again: serving", "passes", passes)
					}
					served = true
				}
			}
		} else {
			passes = 0
			fails++
			if serving && (fails >= hc.FailThreshold || urgent) {
				in.a.log.Warn("service unhealthy: withdrawing from its queue groups", "fails", fails, "err", err)
				in.withdraw()
			}
		}
		next := hc.Interval
		if !served {
			next = startupPoll
		}
		timer.Reset(next)
	}
}

// errRefused is subscribe's error while the broker refuses the instance's
// queue subscriptions (inbound.refusal says why).
var errRefused = errors.New("the broker refuses the queue subscriptions")

// refusalRetry is how long an instance whose queue subscriptions the broker
// refused waits before it asks again (a variable for the tests).
var refusalRetry = time.Minute

// subscribe joins the service's queue groups. The flush after each
// subscription makes sure the broker knows the interest before the agent
// reports itself serving, and tells a refused one: nats-server answers a
// subscription outside the user's permissions with an -ERR before the
// PONG of the flush, and nats.go records it as the connection's last error
// in its read loop before the flush returns. A refused subscription (an
// undeclared subset, another service's credentials) leaves the queue
// groups again and returns errRefused, said once at Error; the connection's
// async error handler catches one the flush could not tell (another error
// came between), see watchRefusals.
func (in *inbound) subscribe() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || len(in.subs) > 0 || in.ej.Out() {
		return nil
	}
	if in.refusal != nil {
		return errRefused
	}
	nc := in.a.nc
	subjects, queues := wire.ServiceSubjects(in.a.cfg.Service, in.a.cfg.Subset)
	for i, subj := range subjects {
		before := nc.LastError()
		sub, err := nc.QueueSubscribe(subj, queues[i], in.dispatch.ServeMsg)
		if err != nil {
			for _, s := range in.subs {
				s.Unsubscribe()
			}
			in.subs = nil
			return err
		}
		in.subs = append(in.subs, sub)
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			in.a.log.Warn("flushing subscriptions", "err", err)
			continue
		}
		// A violation is a pointer (nats.go wraps it), so comparing it
		// with the error before is safe, and tells a new one from an old
		// refusal of the same subscription.
		if last := nc.LastError(); in.refuses(last) == i && last != before {
			in.refuseLocked(i, last)
			return errRefused
		}
	}
	if in.refusalLogged {
		// Said whichever way it joined (a retry, or the health loop).
		in.a.log.Info("agent: the broker admits the queue subscriptions now: serving")
	}
	in.refusalLogged = false // a refusal after this one is news
	in.firstOnce.Do(func() { close(in.firstServing) })
	in.a.cfg.Telemetry.SetServing(in.a.cfg.Service, in.a.cfg.Subset, true)
	return nil
}

// refuses returns the index (in wire.ServiceSubjects) of the instance's
// queue subscription that err says the broker refused, or -1.
func (in *inbound) refuses(err error) int {
	v, ok := natsconn.ParseViolation(err)
	if !ok || !v.Subscribe {
		return -1
	}
	subjects, queues := wire.ServiceSubjects(in.a.cfg.Service, in.a.cfg.Subset)
	for i := range subjects {
		if v.Subject == subjects[i] && v.Queue == queues[i] {
			return i
		}
	}
	return -1
}

// refuseLocked (with in.mu held) takes the instance out of its queue
// groups after the broker refused its subscription i (in
// wire.ServiceSubjects' order), err being the broker's refusal, and holds
// it out until retryRefused. It says why once, at Error.
func (in *inbound) refuseLocked(i int, err error) {
	in.refusals.Add(1)
	for _, s := range in.subs {
		// Drained: the other subscription may have had a call delivered.
		ch := s.StatusChanged(nats.SubscriptionClosed)
		if s.Drain() != nil {
			s.Unsubscribe()
			continue
		}
		in.draining = append(in.draining, ch)
	}
	in.subs = nil
	in.refusal = in.refusalError(i)
	if !in.refusalLogged {
		in.refusalLogged = true
		in.a.log.Error("agent: "+in.refusal.Error(), "err", err)
	}
	in.refusedOnce.Do(func() { close(in.refusedCh) })
	if in.retry == nil {
		in.retry = time.AfterFunc(refusalRetry, in.retryRefused)
	} else {
		in.retry.Reset(refusalRetry)
	}
	in.a.cfg.Telemetry.SetServing(in.a.cfg.Service, in.a.cfg.Subset, false)
}

// refusalError says why the broker refused subscription i, and what to do.
func (in *inbound) refusalError(i int) error {
	c := &in.a.cfg
	if i > 0 {
		return fmt.Errorf("the broker refuses %s serving subset %s: the mesh file declares no subset %s of %s; "+
			"declare it under services.%s.subsets and run natsmesh accounts generate again (then restart or reload the broker with it)",
			c.Service, c.Subset, c.Subset, c.Service, c.Service)
	}
	subjects, queues := wire.ServiceSubjects(c.Service, "")
	return fmt.Errorf("the broker refuses %s serving: its NATS user may not subscribe %s in queue group %s; "+
		"connect with %s's own credentials (natsmesh accounts generate), from a mesh file that declares %s",
		c.Service, subjects[0], queues[0], c.Service, c.Service)
}

// refusalErr returns why the broker refuses the instance's queue
// subscriptions, or nil.
func (in *inbound) refusalErr() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.refusal
}

// retryRefused asks the broker again, refusalRetry after it refused (its
// configuration may have been reloaded since), unless the service is
// unhealthy now: then the health loop subscribes once checks pass.
func (in *inbound) retryRefused() {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.refusal = nil
	in.mu.Unlock()
	in.rejoin("subscribing", "") // subscribe says it when it joins
}

// watchRefusals chains a handler in front of the connection's async error
// handler for the refusals subscribe cannot tell at once: a queue
// subscription that nats.go sends again after a reconnect, one a reload of
// the broker's configuration withdraws, one whose -ERR another error
// followed before the flush returned. Each takes the instance out of its
// queue groups as subscribe does. The refusals of the instance's own queue
// subscriptions are the agent's to report (refuseLocked says why, once):
// they are not passed on.
func (in *inbound) watchRefusals() {
	nc := in.a.nc
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if i := in.refuses(err); i >= 0 {
			go in.refuseLater(i, err) // not on nats.go's callback goroutine
			return
		}
		if prev != nil {
			prev(c, sub, err)
		}
	})
}

// refuseLater is watchRefusals' refusal: the instance leaves its queue
// groups, unless it is out of them already (subscribe saw the refusal
// itself, or the instance withdrew).
func (in *inbound) refuseLater(i int, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.refusal != nil || len(in.subs) == 0 {
		return
	}
	in.refuseLocked(i, err)
}

// withdraw leaves the queue groups by draining: messages already delivered to
// this instance are still served. It returns once the broker has processed
// the unsubscribe (a flush), so when Serving reports false no new call is
// routed here. The drains finish in the background; shutdown waits for every
// one, including those a health withdrawal began.
func (in *inbound) withdraw() {
	in.withdrawMu.Lock()
	defer in.withdrawMu.Unlock()
	in.mu.Lock()
	subs := in.subs
	in.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	var draining []<-chan nats.SubStatus
	for _, s := range subs {
		ch := s.StatusChanged(nats.SubscriptionClosed)
		if err := s.Drain(); err != nil {
			s.Unsubscribe()
			continue
		}
		draining = append(draining, ch)
	}
	if err := in.a.nc.FlushTimeout(5 * time.Second); err != nil {
		in.a.log.Warn("flushing the unsubscribe", "err", err)
	}
	in.mu.Lock()
	in.subs = nil
	in.draining = append(in.draining, draining...)
	in.mu.Unlock()
	in.a.cfg.Telemetry.SetServing(in.a.cfg.Service, in.a.cfg.Subset, false)
}

// restore ends a passive health cool-off: back in the queue groups unless
// the last health check failed (then the health loop restores the
// instance once checks pass).
func (in *inbound) restore() {
	in.rejoin("subscribing after passive health cool-off", "passive health: back in its queue groups (probation)")
}

// rejoin joins the queue groups again unless the last health check
// failed (the health loop does once checks pass): a failure is logged
// with failed (a refusal is said already, once), and joined once the
// instance serves (not after Shutdown).
func (in *inbound) rejoin(failed, joined string) {
	in.mu.Lock()
	healthy := in.healthErr == nil
	in.mu.Unlock()
	if !healthy {
		return
	}
	if err := in.subscribe(); err != nil {
		if !errors.Is(err, errRefused) {
			in.a.log.Error(failed, "err", err)
		}
		return
	}
	if joined != "" && in.serving() {
		in.a.log.Info(joined)
	}
}

// drainTimeout bounds the wait for a subscription's delivered messages.
const drainTimeout = 30 * time.Second

func (in *inbound) shutdown() error {
	in.mu.Lock()
	in.closed = true
	if in.retry != nil {
		in.retry.Stop()
	}
	in.mu.Unlock()
	in.ej.Stop()
	in.withdraw()
	in.mu.Lock()
	draining := in.draining
	in.draining = nil
	in.mu.Unlock()
	timeout := time.NewTimer(drainTimeout)
	defer timeout.Stop()
	for _, ch := range draining {
		select {
		case <-ch:
		case <-timeout.C:
			in.a.log.Warn("subscription drain did not finish", "after", drainTimeout)
		}
	}
	// Every delivered message has been dispatched (or the drain timed out);
	// from here on a late delivery is refused, and the calls in flight are
	// answered before the connections close.
	if in.dispatch != nil {
		in.dispatch.Close(context.Background())
		in.unobserve()
	}
	in.httpTransport.CloseIdleConnections()
	if in.httpUpstream != nil {
		in.httpUpstream.CloseIdleConnections()
	}
	in.grpcMu.Lock()
	defer in.grpcMu.Unlock()
	in.grpcClosed = true
	if in.grpcCC != nil {
		return in.grpcCC.Close()
	}
	return nil
}

// CallerFrom returns the name of the service that made the inbound call
// served under ctx, as the broker vouches for it (the subject's caller
// token), for in-process HTTP handlers and gRPC services alike. HTTP handlers
// also find it in the Mesh-Caller header.
func CallerFrom(ctx context.Context) (string, bool) { return pipeline.CallerFrom(ctx) }
