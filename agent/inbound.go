package agent

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	"github.com/natsmesh/natsmesh/internal/chain"
	siblings "github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/internal/queuehold"
	"github.com/natsmesh/natsmesh/internal/upstream"
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

	mu        sync.Mutex
	healthErr error // the last health check's result, under mu

	// hold is the instance's hold on its queue groups (package
	// internal/queuehold: joining, a broker's refusal, leaving by
	// draining).
	hold *queuehold.Hold

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
	in.hold = queuehold.New(queuehold.Config{
		Conn: a.nc, Service: a.cfg.Service, Subset: a.cfg.Subset,
		Handler:    func(m *nats.Msg) { in.dispatch.ServeMsg(m) },
		Instance:   a.instance,
		Out:        in.ej.Out,
		OnServing:  func(on bool) { a.cfg.Telemetry.SetServing(a.cfg.Service, a.cfg.Subset, on) },
		RetryAfter: refusalRetry,
		Retry:      func() { in.rejoin("subscribing", "") }, // subscribe says it when it joins
		Logger:     a.log,
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
	case in.a.upstream != nil && !upstream.GRPC(in.a.upstream):
		in.httpUpstream = &meshhttp.Upstream{Base: in.a.upstream, Transport: in.httpTransport, Limits: limits, OnRefused: in.onRefused}
		p.HTTP = in.httpUpstream
	}
	switch {
	case in.grpcServer != nil:
		p.GRPC = in.grpcServer
	case in.a.upstream != nil && upstream.GRPC(in.a.upstream):
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

func (in *inbound) serving() bool { return in.hold.Serving() }

func (in *inbound) lastHealthError() string {
	if err := in.hold.Refusal(); err != nil {
		return err.Error()
	}
	if r := in.ej.Ejected(); r != "" {
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
		Subset:        in.a.cfg.Subset,
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
	in.hold.WatchRefusals()
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
		if err := in.subscribe(); err != nil && !errors.Is(err, queuehold.ErrRefused) {
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
				if err := in.subscribe(); errors.Is(err, queuehold.ErrRefused) {
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

// refusalRetry is how long an instance whose queue subscriptions the broker
// refused waits before it asks again (a variable for the tests).
var refusalRetry = time.Minute

// subscribe joins the service's queue groups (queuehold.Hold.Join).
func (in *inbound) subscribe() error { return in.hold.Join() }

// withdraw leaves the queue groups by draining (queuehold.Hold.Leave).
func (in *inbound) withdraw() { in.hold.Leave() }

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
		if !errors.Is(err, queuehold.ErrRefused) {
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
	in.hold.Close()
	in.ej.Stop()
	in.hold.Leave()
	in.hold.Wait(drainTimeout)
	// Every delivered message has been dispatched (or the drain timed out);
	// from here on a late delivery is refused, and the calls in flight are
	// answered before the connections close.
	if in.dispatch != nil {
		in.dispatch.Close(context.Background())
		in.unobserve()
	}
	in.stall.stop()
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
