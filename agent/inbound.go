package agent

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/natsmesh/natsmesh/internal/chain"
	siblings "github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/meshgrpc"
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
	limits        pipeline.Limits  // the agent's (limitsNow), made once
	handler       http.Handler     // in-process HTTP service
	grpcServer    *meshgrpc.Server // in-process gRPC services
	grpcMu        sync.Mutex
	grpcCC        *grpc.ClientConn
	grpcClosed    bool

	// dispatch is the inbound pipeline, built by start once the in-process
	// handlers are known.
	dispatch *pipeline.Inbound
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

	// ej is the instance's side of passive health (package
	// internal/siblings): its claims, its cool-offs out of the queue
	// groups, and the counts of its siblings.
	ej *siblings.Member
}

func newInbound(a *Agent) *inbound {
	in := &inbound{
		a:             a,
		firstServing:  make(chan struct{}),
		refused:       make(chan struct{}, 1),
		httpTransport: pipeline.NewUpstreamTransport(),
		limits:        a.limitsNow,
	}
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
		p.HTTP = pipeline.HTTPHandler(in.handler, limits)
	case in.a.upstream != nil && in.a.upstream.Scheme == "http":
		p.HTTP = &pipeline.HTTPUpstream{Base: in.a.upstream, Transport: in.httpTransport, Limits: limits, OnRefused: in.onRefused}
	}
	switch {
	case in.grpcServer != nil:
		p.GRPC = in.grpcServer
	case in.a.upstream != nil && in.a.upstream.Scheme == "h2c":
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
			grpc.WithTransportCredentials(insecure.NewCredentials()),
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
	d, err := pipeline.NewInbound(in.a.nc, pipeline.InboundConfig{
		Service:       in.a.cfg.Service,
		Handler:       in.handlers(),
		Middleware:    append([]pipeline.InboundMiddleware{in.a.countEndpoints}, chain.Inbound(in.a.chainOptions(), in.a.cfg.Inbound...)...),
		MaxConcurrent: in.a.cfg.MaxConcurrent,
		Timeout:       in.a.cfg.Timeout,
		Logger:        in.a.log,
	})
	if err != nil {
		return err
	}
	in.dispatch = d
	return nil
}

// run subscribes at once when there is no health check, and otherwise
// starts the health loop, which subscribes once the service is healthy.
func (in *inbound) run(ctx context.Context) {
	check := in.a.checker()
	if check == nil {
		if err := in.subscribe(); err != nil {
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
		if err == nil {
			fails = 0
			passes++
			if !serving && in.ej.Ejected() == "" && (!served || passes >= hc.PassThreshold) {
				if err := in.subscribe(); err != nil {
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

// subscribe joins the service's queue groups. The flush makes sure the
// broker knows the interest before the agent reports itself serving.
func (in *inbound) subscribe() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || len(in.subs) > 0 || in.ej.Out() {
		return nil
	}
	subjects, queues := wire.ServiceSubjects(in.a.cfg.Service, in.a.cfg.Subset)
	for i, subj := range subjects {
		sub, err := in.a.nc.QueueSubscribe(subj, queues[i], in.dispatch.ServeMsg)
		if err != nil {
			for _, s := range in.subs {
				s.Unsubscribe()
			}
			in.subs = nil
			return err
		}
		in.subs = append(in.subs, sub)
	}
	if err := in.a.nc.FlushTimeout(5 * time.Second); err != nil {
		in.a.log.Warn("flushing subscriptions", "err", err)
	}
	in.firstOnce.Do(func() { close(in.firstServing) })
	in.a.cfg.Telemetry.SetServing(in.a.cfg.Service, in.a.cfg.Subset, true)
	return nil
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
	in.mu.Lock()
	healthy := in.healthErr == nil
	in.mu.Unlock()
	if !healthy {
		return
	}
	if err := in.subscribe(); err != nil {
		in.a.log.Error("subscribing after passive health cool-off", "err", err)
		return
	}
	if in.serving() { // not after Shutdown
		in.a.log.Info("passive health: back in its queue groups (probation)")
	}
}

// drainTimeout bounds the wait for a subscription's delivered messages.
const drainTimeout = 30 * time.Second

func (in *inbound) shutdown() error {
	in.mu.Lock()
	in.closed = true
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
	}
	in.httpTransport.CloseIdleConnections()
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
