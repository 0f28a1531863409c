package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/natsmesh/natsmesh/bridge"
)

// HeaderCaller is set on every inbound HTTP request to the name of the
// calling service, taken from the subject (which the broker's permissions
// bind to the caller's NATS user), never from what the caller sent.
const HeaderCaller = "Mesh-Caller"

// overloadRetryAfter is the Retry-After of an overloaded answer.
const overloadRetryAfter = time.Second

// inbound serves the calls to the agent's service.
type inbound struct {
	a   *Agent
	sem chan struct{} // nil: no concurrency limit

	httpTransport *http.Transport
	handler       http.Handler                               // in-process HTTP service
	serveGRPC     func(context.Context, *nats.Msg) *nats.Msg // gRPC upstream or in-process server
	grpcServer    *bridge.GRPCServer                         // in-process gRPC services
	grpcMu        sync.Mutex
	grpcCC        *grpc.ClientConn
	grpcClosed    bool

	inflight     sync.WaitGroup
	firstServing chan struct{}
	firstOnce    sync.Once

	withdrawMu sync.Mutex // one withdrawal at a time
	mu         sync.Mutex
	subs       []*nats.Subscription
	draining   []<-chan nats.SubStatus // subscriptions left but maybe not yet closed
	closed     bool                    // no more subscribing
	stopped    bool                    // no more dispatching: inflight is being waited on
	healthErr  error
}

func newInbound(a *Agent) *inbound {
	in := &inbound{a: a, firstServing: make(chan struct{})}
	if a.cfg.MaxConcurrent > 0 {
		in.sem = make(chan struct{}, a.cfg.MaxConcurrent)
	}
	in.httpTransport = &http.Transport{
		// The agent's own HTTP_PROXY must not apply to its local service.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// Bodies pass through as the service wrote them.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	if a.upstream != nil && a.upstream.Scheme == "h2c" {
		in.serveGRPC = in.grpcUpstream
	}
	return in
}

// enabled reports whether there is anything to serve inbound.
func (in *inbound) enabled() bool {
	return in.a.upstream != nil || in.handler != nil || in.serveGRPC != nil
}

func (in *inbound) serving() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.subs) > 0
}

func (in *inbound) lastHealthError() string {
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

func (in *inbound) start(ctx context.Context) {
	check := in.a.checker()
	if check == nil {
		if err := in.subscribe(); err != nil {
			in.a.log.Error("subscribing", "err", err)
		}
		return
	}
	go in.healthLoop(ctx, check)
}

// healthLoop runs the checks and moves the instance in and out of its queue
// groups. Until the first check passes it polls faster than Interval, so an
// instance starts serving as soon as its service is up.
func (in *inbound) healthLoop(ctx context.Context, check func(context.Context) error) {
	hc := in.a.cfg.Health
	var passes, fails int
	served := false
	startupPoll := min(hc.Interval, 100*time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
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
		serving := in.serving()
		if err == nil {
			fails = 0
			passes++
			if !serving && (!served || passes >= hc.PassThreshold) {
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
			if serving && fails >= hc.FailThreshold {
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
	if in.closed || len(in.subs) > 0 {
		return nil
	}
	subjects, queues := bridge.ServiceSubjects(in.a.cfg.Service, in.a.cfg.Subset)
	for i, subj := range subjects {
		sub, err := in.a.nc.QueueSubscribe(subj, queues[i], in.onMsg)
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
}

// drainTimeout bounds the wait for a subscription's delivered messages.
const drainTimeout = 30 * time.Second

func (in *inbound) shutdown() error {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
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
	// from here on a late delivery is refused rather than raced with Wait.
	in.mu.Lock()
	in.stopped = true
	in.mu.Unlock()
	in.inflight.Wait()
	in.httpTransport.CloseIdleConnections()
	in.grpcMu.Lock()
	defer in.grpcMu.Unlock()
	in.grpcClosed = true
	if in.grpcCC != nil {
		return in.grpcCC.Close()
	}
	return nil
}

// onMsg runs in the subscription's delivery goroutine: it admits the call or
// refuses it at once, and serves it on its own goroutine so calls run
// concurrently up to the limit.
func (in *inbound) onMsg(m *nats.Msg) {
	if m.Reply == "" {
		return // a publish, not a request: there is no one to answer
	}
	if in.sem != nil {
		select {
		case in.sem <- struct{}{}:
		default:
			in.respond(m, bridge.ErrorMsg(&bridge.Error{
				Kind:       bridge.KindOverloaded,
				Message:    in.a.cfg.Service + " instance at its concurrency limit",
				RetryAfter: overloadRetryAfter,
			}))
			return
		}
	}
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		if in.sem != nil {
			<-in.sem
		}
		in.respond(m, bridge.ErrorMsg(&bridge.Error{Kind: bridge.KindOverloaded, Message: in.a.cfg.Service + " instance shutting down"}))
		return
	}
	in.inflight.Add(1)
	in.mu.Unlock()
	go func() {
		defer in.inflight.Done()
		if in.sem != nil {
			defer func() { <-in.sem }()
		}
		in.respond(m, in.serve(m))
	}()
}

// respond sends reply. If the broker refuses it (a max_payload smaller than
// the one the reply was sized for, after a reconnect), the caller still gets
// one answer: a mesh error saying why.
func (in *inbound) respond(m, reply *nats.Msg) {
	reply.Subject = m.Reply
	err := in.a.nc.PublishMsg(reply)
	if err == nil || errors.Is(err, nats.ErrConnectionClosed) {
		return
	}
	in.a.log.Warn("sending reply", "subject", m.Subject, "err", err)
	e := bridge.FromError(err)
	if e.Kind != bridge.KindTooLarge {
		e = &bridge.Error{Kind: bridge.KindInternal, Message: "sending the reply: " + err.Error()}
	}
	fallback := bridge.ErrorMsg(e)
	fallback.Subject = m.Reply
	if err := in.a.nc.PublishMsg(fallback); err != nil {
		in.a.log.Warn("sending error reply", "subject", m.Subject, "err", err)
	}
}

func (in *inbound) serve(m *nats.Msg) *nats.Msg {
	subj, err := bridge.ParseSubject(m.Subject)
	if err != nil {
		return bridge.ErrorMsg(&bridge.Error{Kind: bridge.KindBadRequest, Message: err.Error()})
	}
	ctx := bridge.WithCaller(context.Background(), subj.Caller)
	// A caller that propagated no deadline (a plain NATS client: nats req,
	// a micro client) gets the agent's default, so no local call and no
	// concurrency slot is held forever.
	if m.Header.Get(bridge.HeaderTimeout) == "" && m.Header.Get("grpc-timeout") == "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, in.a.cfg.Timeout)
		defer cancel()
	}
	switch subj.Proto {
	case bridge.ProtoHTTP:
		return in.serveHTTP(ctx, subj, m)
	case bridge.ProtoGRPC:
		if in.serveGRPC == nil {
			return bridge.ErrorMsg(bridge.Errorf(bridge.KindNoRoute, "%s serves no gRPC", in.a.cfg.Service))
		}
		return in.serveGRPC(ctx, m)
	}
	return bridge.ErrorMsg(bridge.Errorf(bridge.KindBadRequest, "unknown protocol %q", subj.Proto))
}

func (in *inbound) serveHTTP(ctx context.Context, subj bridge.Subject, m *nats.Msg) *nats.Msg {
	if in.handler != nil {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setCaller(r.Header, subj.Caller)
			in.handler.ServeHTTP(w, r)
		})
		return bridge.ServeHTTPMsg(ctx, h, m, in.a.limitsNow())
	}
	if in.a.upstream == nil || in.a.upstream.Scheme != "http" {
		return bridge.ErrorMsg(bridge.Errorf(bridge.KindNoRoute, "%s serves no HTTP", in.a.cfg.Service))
	}
	r, cancel, err := bridge.DecodeHTTPRequest(ctx, m)
	if err != nil {
		return bridge.ErrorMsg(bridge.FromError(err))
	}
	defer cancel()
	r.URL.Scheme = "http"
	r.URL.Host = in.a.upstream.Host
	r.RequestURI = ""
	setCaller(r.Header, subj.Caller)
	resp, err := in.httpTransport.RoundTrip(r)
	if err != nil {
		return bridge.ErrorMsg(upstreamError(r.Context(), err))
	}
	reply, err := bridge.EncodeHTTPResponse(resp, in.a.limitsNow())
	if err != nil {
		return bridge.ErrorMsg(bridge.FromError(err))
	}
	return reply
}

// setCaller sets the Mesh-Caller header, removing any spelling of it the
// caller sent: the identity comes from the subject only.
func setCaller(h http.Header, caller string) {
	for k := range h {
		if strings.EqualFold(k, HeaderCaller) {
			delete(h, k)
		}
	}
	h[HeaderCaller] = []string{caller}
}

// upstreamError classifies a failed call to the local service: the caller's
// deadline passing is a timeout; anything else means the service could not
// be reached or answered badly.
func upstreamError(ctx context.Context, err error) *bridge.Error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &bridge.Error{Kind: bridge.KindTimeout, Message: "local service did not answer in time", Err: err}
	}
	return &bridge.Error{Kind: bridge.KindUpstream, Message: err.Error(), Err: err}
}

// CallerFrom returns the name of the service that made the inbound call
// served under ctx, as the broker vouches for it (the subject's caller
// token), for in-process HTTP handlers and gRPC services alike. HTTP handlers
// also find it in the Mesh-Caller header.
func CallerFrom(ctx context.Context) (string, bool) { return bridge.CallerFromContext(ctx) }
