package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/adaptivelimit"
	"github.com/natsmesh/natsmesh/internal/admission"
	"github.com/natsmesh/natsmesh/internal/meshstream"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Handler serves one inbound call and returns the reply to send: the local
// service's answer, whatever its status, read once ([Reply]; a handler
// that encodes one message makes it with [ReplyFromMsg]). A failure of the
// mesh (the call cannot be decoded, the service cannot be reached, a limit
// refuses it) is returned as an error instead, which the dispatch sends as
// a mesh error reply; an error that is no *wire.Error is sent as
// KindInternal.
//
// ctx carries the call's deadline and caller ([CallerFrom]); a handler must
// not use the call after it returns, but for its streamed body, which it
// may read until its reply ends. A call's body is whole, or a stream
// (the stream protocol); a handler may answer with a stream, before it
// has read the request's (full duplex): the dispatch sends it as it
// comes, and ctx ends when the caller cancels or the stream fails.
type Handler interface {
	ServeCall(ctx context.Context, c *Call) (*Reply, error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, c *Call) (*Reply, error)

// ServeCall calls f.
func (f HandlerFunc) ServeCall(ctx context.Context, c *Call) (*Reply, error) { return f(ctx, c) }

// InboundMiddleware wraps a Handler with one concern (a rate limit,
// authorization, a fault, a span, a metric).
type InboundMiddleware func(next Handler) Handler

// Protocols is the Handler that sends each call to the handler of its
// protocol; a protocol with no handler answers no-route naming the service.
type Protocols struct {
	// Service names the local service in errors.
	Service string
	// HTTP and GRPC serve calls of each protocol; nil for none.
	HTTP, GRPC Handler
}

// ServeCall implements [Handler].
func (p Protocols) ServeCall(ctx context.Context, c *Call) (*Reply, error) {
	var h Handler
	switch c.Proto {
	case wire.ProtoHTTP:
		h = p.HTTP
	case wire.ProtoGRPC:
		h = p.GRPC
	}
	if h == nil {
		return nil, wire.Errorf(wire.KindNoRoute, "%s serves no %s", p.Service, c.Proto)
	}
	return h.ServeCall(ctx, c)
}

// InboundConfig configures an [Inbound]. Zero values take the defaults
// noted on each field.
type InboundConfig struct {
	// Service is the local service's name, for errors and logs.
	Service string
	// Subset is the instance's subset, "" for none: a call addressed to
	// the instance (wire.InstancePrefix) that names it in
	// wire.HeaderSubset is counted as that subset's, as if it had come
	// on the subset's queue subject.
	Subset string
	// Handler serves the calls. Required.
	Handler Handler
	// Middleware wraps Handler, the first outermost.
	Middleware []InboundMiddleware
	// MaxConcurrent is a fixed bound of the calls in flight, for an
	// operator who knows the local service's capacity. Zero means the
	// adaptive limit (see [Inbound]): at most DefaultMaxConcurrent in
	// flight, and of those only as many as the service serves without
	// queueing, learned from its latency. Negative means no limit.
	MaxConcurrent int
	// Timeout is the deadline of a call whose message propagates none (a
	// plain NATS client's request). Default DefaultTimeout.
	Timeout time.Duration
	// Logger receives failures to reply. Default slog.Default().
	Logger *slog.Logger
	// StreamWindow is the credit granted a streamed request body: the
	// most of it the dispatch holds unread. Default
	// wire.DefaultStreamWindow.
	StreamWindow int64
	// StreamIdle is the idle timeout of a stream whose caller sets none.
	// Default wire.DefaultStreamIdle.
	StreamIdle time.Duration
	// adaptive configures the adaptive limit: its defaults but in
	// tests.
	adaptive adaptivelimit.Config
	// ClockSkew is how far this host's clock may be ahead of a caller's:
	// a call is not started once its caller's deadline (wire.HeaderStartBy)
	// is more than ClockSkew past, and its local deadline is no later than
	// that. Default DefaultClockSkew; negative ignores callers' deadlines
	// as absolute times (Mesh-Timeout alone, counted from receipt).
	ClockSkew time.Duration
}

// DefaultClockSkew is the clock skew an inbound dispatch tolerates by
// default: hosts kept by NTP agree within milliseconds.
const DefaultClockSkew = 250 * time.Millisecond

// DefaultMaxConcurrent bounds the calls in flight, streams included,
// under the adaptive limit; it matches Envoy's default max_requests per
// cluster.
const DefaultMaxConcurrent = 1024

// overloadRetryAfter is the Retry-After of an overloaded answer.
const overloadRetryAfter = time.Second

// Inbound is the one inbound pipeline of an agent: the dispatch every
// message for its service goes through, whatever kind of local service
// answers it. For each message it:
//
//  1. drops it if it has no reply subject (a publish: no one to answer),
//     and admits it or not (package internal/admission, whose doc has
//     the rules): a reply subject outside the pair inbox of the caller
//     and the service is refused, publishing nothing; a call past its
//     caller's deadline is answered not started; a call over the
//     concurrency limit is answered overloaded at once (with
//     Retry-After), without running anything, so the caller may retry
//     elsewhere, as every call after Close is. The limit is
//     InboundConfig.MaxConcurrent when set, and by default adaptive,
//     under DefaultMaxConcurrent: only calls whose request is whole go
//     under it, each until its answer's head, and those whose answer is
//     whole too are the samples of the service's latency; a stream keeps
//     only its place under DefaultMaxConcurrent until it ends;
//  2. parses the subject into a [Call] (a malformed one is bad-request);
//  3. sets the deadline, here and nowhere else inbound: the message's
//     Mesh-Timeout, else its grpc-timeout header (gRPC's wire form, as a
//     raw NATS client may send it), else Timeout; and the caller from the
//     subject ([CallerFrom]);
//  4. passes the middleware, the first outermost, then the handler;
//  5. sends exactly one reply: the handler's, or its error as a mesh error
//     reply; a reply the broker refuses (over max_payload) is replaced by a
//     mesh error saying why. A call made with the stream protocol
//     (docs/wire.md, "Streams") may stream its body in and its answer
//     out, within the credit each side grants, and holds its slot until
//     both have ended.
type Inbound struct {
	nc      *nats.Conn
	service string
	subset  string
	handler Handler
	timeout time.Duration
	log     *slog.Logger
	stream  meshstream.Config

	// What admits a call (package internal/admission): its reply
	// subject, its caller's deadline, the concurrency limit.
	refused admission.Refusals
	startBy admission.StartBy
	gate    *admission.Gate

	// muxMu guards mux, the inbox of the streams' frames from their
	// callers, made at the first stream.
	muxMu  sync.Mutex
	mux    *replymux.Mux
	listen meshstream.Listener // in.listenStream, bound once

	inflight sync.WaitGroup
	mu       sync.Mutex
	closed   bool

	// idle hands a message to a worker that has served one and waits for
	// the next (see work); stop, closed by Close, ends the waiting ones.
	idle     chan dispatched
	stop     chan struct{}
	stopOnce sync.Once
}

// workerIdle is how long a worker that has served a call waits for the
// next before it exits.
const workerIdle = 100 * time.Millisecond

// NewInbound returns the dispatch that replies over nc.
func NewInbound(nc *nats.Conn, cfg InboundConfig) (*Inbound, error) {
	if nc == nil {
		return nil, errors.New("pipeline: nil NATS connection")
	}
	if cfg.Handler == nil {
		return nil, errors.New("pipeline: inbound pipeline without a handler")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("pipeline: negative timeout %v", cfg.Timeout)
	}
	if err := checkStreamIdle(cfg.StreamIdle); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	var adaptive *adaptivelimit.Config
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
		if cfg.adaptive.Max == 0 {
			cfg.adaptive.Max = DefaultMaxConcurrent
		}
		adaptive = &cfg.adaptive
	}
	gate, err := admission.NewGate(cfg.MaxConcurrent, adaptive)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	h := cfg.Handler
	for i := len(cfg.Middleware) - 1; i >= 0; i-- {
		h = cfg.Middleware[i](h)
	}
	in := &Inbound{nc: nc, service: cfg.Service, subset: cfg.Subset, handler: h, timeout: cfg.Timeout, log: cfg.Logger,
		stream:  meshstream.Config{Window: cfg.StreamWindow, Idle: cfg.StreamIdle},
		startBy: admission.StartBy{Skew: cfg.ClockSkew, Log: cfg.Logger},
		refused: admission.Refusals{Log: cfg.Logger},
		gate:    gate, idle: make(chan dispatched), stop: make(chan struct{})}
	in.listen = in.listenStream
	return in, nil
}

// ServeMsg is the subscription handler: it admits the call or refuses it at
// once, and serves it on a goroutine of its own, so calls run concurrently
// up to the limit while the subscription keeps delivering. The goroutine
// is a worker that served an earlier call and is waiting for the next,
// when there is one: a new goroutine's stack starts small and grows, by
// copies, to what a call through the middleware and the local service
// needs, which costs more than the dispatch itself.
func (in *Inbound) ServeMsg(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	if !admission.ReplyAllowed(m.Subject, m.Reply) {
		// Not even an error reply: any answer would go to the subject
		// the sender chose.
		in.refused.Refused(m.Subject, m.Reply)
		return
	}
	if late := in.startBy.Late(m.Header); late > 0 {
		// The caller gave up before the call could start (it sat in a
		// socket, or in this process while it was frozen): it is not
		// run. The answer is for a raw client that still listens.
		in.respond(m, nil, in.startBy.NotStarted(m.Subject, late))
		return
	}
	whole := wholeRequest(m)
	wait, ok := in.gate.Admit(whole)
	if !ok {
		in.refuse(m)
		return
	}
	d := dispatched{m: m, wait: wait, whole: whole}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		if !d.wait {
			in.gate.HeadDone(d.whole, time.Time{}, false)
		}
		in.gate.Release()
		in.respond(m, nil, &wire.Error{Kind: wire.KindOverloaded, Message: in.service + " instance shutting down"})
		return
	}
	in.inflight.Add(1)
	in.mu.Unlock()
	select {
	case in.idle <- d:
	default:
		go in.work(d)
	}
}

// dispatched is an admitted message handed to a worker; wait says it
// must first wait for its place under the adaptive limit; whole is
// wholeRequest(m), read once at admission and given back with its place.
type dispatched struct {
	m     *nats.Msg
	wait  bool
	whole bool
}

// refuse answers m overloaded, at the concurrency limit.
func (in *Inbound) refuse(m *nats.Msg) {
	in.gate.Refuse()
	in.respond(m, nil, &wire.Error{
		Kind:       wire.KindOverloaded,
		Message:    in.service + " instance at its concurrency limit",
		RetryAfter: overloadRetryAfter,
	})
}

// work serves d, then each message handed to it while it waits idle, and
// exits once none came for workerIdle or Close stopped the dispatch.
func (in *Inbound) work(d dispatched) {
	var idle *time.Timer
	for {
		in.run(d)
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case d = <-in.idle:
		case <-idle.C:
			return
		case <-in.stop:
			idle.Stop()
			return
		}
	}
}

// run serves one admitted message and sends its reply, once it has its
// place under the adaptive limit when it must wait for one (or answers it
// overloaded when it gets none).
func (in *Inbound) run(d dispatched) {
	defer in.inflight.Done()
	defer in.gate.Release()
	m := d.m
	if d.wait && !in.gate.Wait() {
		in.refuse(m)
		return
	}
	start := time.Now()
	if meshstream.Streams(m) {
		in.runStream(m, d.whole, start)
		return
	}
	if len(m.Header[wire.HeaderConfirm]) > 0 {
		// Only a stream can carry the caller's confirmation.
		in.respond(m, nil, wire.Errorf(wire.KindBadRequest, "%s needs %s (docs/wire.md, \"Liveness\")", wire.HeaderConfirm, wire.HeaderStream))
		return
	}
	reply, err := in.serve(m)
	in.gate.HeadDone(d.whole, start, err == nil)
	in.respond(m, reply, err)
}

// wholeRequest reports whether m's request is whole, which puts its call
// under the adaptive limit (admission.Gate). A request that streams (an
// upload, a gRPC stream, an upgrade's tunnel) is its client's pace, not
// its service's, and its answer may only begin once it has ended.
func wholeRequest(m *nats.Msg) bool {
	return len(m.Header[wire.HeaderStreamBody]) == 0 &&
		len(m.Header[grpcwire.HeaderGRPCStream]) == 0 && len(m.Header[wire.HeaderUpgrade]) == 0
}

// Limit is the concurrency limit now: the adaptive limit's current
// value, or InboundConfig.MaxConcurrent when it set a fixed bound; 0 when
// there is no limit.
func (in *Inbound) Limit() int { return in.gate.Limit() }

// Refused counts the calls answered overloaded at the concurrency limit.
func (in *Inbound) Refused() uint64 { return in.gate.Refused() }

// serve runs one admitted message through the middleware and handler.
func (in *Inbound) serve(m *nats.Msg) (reply *Reply, err error) {
	subj, err := wire.ParseSubject(m.Subject)
	if err != nil {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: err.Error()}
	}
	timeout, err := callTimeout(m.Header)
	if err != nil {
		return nil, err
	}
	if timeout == 0 {
		timeout = in.timeout
	}
	if timeout, err = in.startBy.Bound(m.Header, timeout); err != nil {
		return nil, err
	}
	c := &Call{
		Service: subj.Service, Subset: in.subsetOf(subj, m.Header), Caller: subj.Caller, Proto: subj.Proto, Op: subj.Op,
		Header: m.Header, Body: Body{Bytes: m.Data}, msg: m,
	}
	// The caller is the subject's, as c has it now: nothing changes a
	// call's caller.
	ctx, cancel := context.WithTimeout(withCallerOf(context.Background(), c), timeout)
	defer cancel()
	if c.Proto == wire.ProtoHTTP {
		c.Path = m.Header.Get(wire.HeaderPath)
	}
	defer func() {
		if p := recover(); p != nil {
			in.log.Error("inbound handler panic", "subject", m.Subject, "panic", p)
			reply, err = nil, wire.Errorf(wire.KindInternal, "handler panic")
		}
	}()
	reply, err = in.handler.ServeCall(ctx, c)
	if err == nil && reply.Streamed() {
		// Issue 18's stream protocol plugs in here: until then a
		// streamed reply is read whole, under the call's deadline, and
		// answered in one message, as a unary one; reading it to its
		// end tells the middleware its outcome (Reply.OnEnd).
		// A reply too large is the service's failure, not the caller's:
		// upstream-unavailable, and the middleware is told the same.
		whole, err := reply.readWholeAs(ctx, LimitsOf(in.nc).PayloadLimit(), func(e *wire.Error) error {
			return &wire.Error{Kind: wire.KindUpstream, Message: "the service's streamed reply exceeds max_payload: " + e.Message}
		})
		if err != nil {
			return nil, err
		}
		return ReplyFromMsg(c.Proto, whole), nil
	}
	return reply, err
}

// runStream serves m, a call made with the stream protocol
// (docs/wire.md, "Streams"): its body may stream in, its answer may
// stream out, each within the credit the other side grants, and the call
// lives until both have ended, it is cancelled, or its stream fails. It
// holds its place under the fixed bound until then, and its place under
// the adaptive limit, if it has one, until its handler has answered (its
// head; whole says it has one): the time until then, from start, is a
// sample of the service's latency when the answer is whole too.
func (in *Inbound) runStream(m *nats.Msg, whole bool, start time.Time) {
	subj, err := wire.ParseSubject(m.Subject)
	if err != nil {
		in.gate.HeadDone(whole, start, false)
		in.respond(m, nil, &wire.Error{Kind: wire.KindBadRequest, Message: err.Error()})
		return
	}
	srv, err := meshstream.Serve(in.nc, m, subj.Service, subj.Caller, in.listen, in.stream)
	if err != nil {
		in.gate.HeadDone(whole, start, false)
		in.respond(m, nil, err)
		return
	}
	if srv.Confirmed() {
		// A call that may not run twice starts only once its caller has
		// confirmed it to this instance, and not past its deadline: the
		// wait may have been long (docs/wire.md, "Liveness").
		err := srv.AwaitStart()
		if late := in.startBy.Late(m.Header); err == nil && late > 0 {
			err = in.startBy.NotStarted(m.Subject, late)
		}
		if err != nil {
			srv.Fail(wire.FromError(err))
			return
		}
	}
	// A call whose answer is slow to come is opened, so its caller can
	// cancel it and the keep-alives bound it. A confirmed call is open
	// already.
	var open *time.Timer
	if !srv.Confirmed() {
		open = time.AfterFunc(wire.StreamOpenAfter, func() {
			if err := srv.Open(); err != nil {
				// Unopened, the call could not be cancelled: it ends now.
				in.log.Debug("opening a stream", "subject", m.Subject, "err", err)
				srv.Fail(wire.FromError(err))
			}
		})
	}
	reply, end, err := in.serveStream(m, subj, srv)
	in.gate.HeadDone(whole, start, err == nil && reply != nil && !reply.Streamed())
	if open != nil {
		open.Stop()
	}
	defer end()
	if err != nil {
		srv.Fail(wire.FromError(err))
		return
	}
	if reply == nil {
		srv.Fail(wire.Errorf(wire.KindInternal, "handler returned no reply"))
		return
	}
	if !reply.Streamed() {
		if err := srv.Answer(reply.Msg()); err != nil {
			in.log.Warn("sending reply", "subject", m.Subject, "err", err)
		}
		return
	}
	defer reply.Body.Stream.Close()
	if err := srv.AnswerStream(reply.Header, reply.Body.Stream); err != nil {
		in.log.Debug("stream ended", "subject", m.Subject, "err", err)
	}
}

// serveStream runs a streamed call through the middleware and handler:
// serve's work, with the request body the stream's and a context that
// ends with the stream. Its deadline is the caller's; a deadline the
// caller did not choose bounds only the time until the handler answers
// (wire.HeaderStreamDeadline "head"), or nothing ("none": a gRPC stream). end releases the call's context,
// once its answer has been sent.
func (in *Inbound) serveStream(m *nats.Msg, subj wire.Subject, srv *meshstream.Server) (reply *Reply, end func(), err error) {
	end = func() {}
	timeout, err := callTimeout(m.Header)
	if err != nil {
		return nil, end, err
	}
	if timeout == 0 {
		timeout = in.timeout
	}
	if timeout, err = in.startBy.Bound(m.Header, timeout); err != nil {
		return nil, end, err
	}
	c := &Call{
		Service: subj.Service, Subset: in.subsetOf(subj, m.Header), Caller: subj.Caller, Proto: subj.Proto, Op: subj.Op,
		Header: m.Header, Body: Body{Bytes: m.Data}, msg: m,
	}
	if b := srv.Body(); b != nil {
		c.Body = Body{Stream: b}
	}
	if c.Proto == wire.ProtoHTTP {
		c.Path = m.Header.Get(wire.HeaderPath)
	}
	ctx, cancel := context.WithCancelCause(withCallerOf(context.Background(), c))
	srv.OnEnd(cancel)
	end = func() { cancel(nil) }
	// The head's timer, made only for a deadline on the head: every
	// other call would allocate it for nothing.
	var head *headTimer
	deadline := m.Header.Get(wire.HeaderStreamDeadline)
	if deadline == "none" && (c.Proto != wire.ProtoGRPC || len(m.Header[grpcwire.HeaderGRPCStream]) == 0) {
		deadline = "head" // only a gRPC stream's head may wait unbounded
	}
	switch deadline {
	case "none":
		// Bounded by the stream's idle timeout and its caller's cancel.
	case "head":
		// From the end of a streamed request body: an upload is answered
		// once it has been read, and until then the credit its reader
		// grants and the keep-alives bound it.
		h := &headTimer{}
		head = h
		start := func() {
			h.start(timeout, func() {
				cancel(&wire.Error{Kind: wire.KindTimeout, Message: fmt.Sprintf("no answer within %v", timeout)})
			})
		}
		if len(m.Header[wire.HeaderUpgrade]) > 0 {
			start() // an upgrade's body, the tunnel, follows its head
		} else {
			srv.AfterBody(start)
		}
	default:
		var stop context.CancelFunc
		ctx, stop = context.WithDeadlineCause(ctx, time.Now().Add(timeout),
			&wire.Error{Kind: wire.KindTimeout, Message: fmt.Sprintf("the call passed its deadline (%v)", timeout)})
		end = func() { stop(); cancel(nil) }
	}
	defer func() {
		if p := recover(); p != nil {
			in.log.Error("inbound handler panic", "subject", m.Subject, "panic", p)
			reply, err = nil, wire.Errorf(wire.KindInternal, "handler panic")
		}
	}()
	reply, err = in.handler.ServeCall(ctx, c)
	if head != nil && head.stop() && err != nil {
		// The head's deadline passed: the handler's error is its.
		if e := context.Cause(ctx); e != nil {
			err = e
		}
	}
	return reply, end, err
}

// headTimer is the deadline of a stream's head, started once its request
// body has ended (which may come after its handler has answered).
type headTimer struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func (h *headTimer) start(d time.Duration, fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		h.t = time.AfterFunc(d, fn)
	}
}

// stop stops the timer and reports whether it had fired.
func (h *headTimer) stop() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	return h.t != nil && !h.t.Stop()
}

// listenStream registers the inbox of a stream's frames from its caller
// (peer) on the dispatch's reply mux for the service called (owner),
// made at the first stream. Bound once, as in.listen: a call allocates
// no closure for it.
func (in *Inbound) listenStream(owner, peer string, fn func(*nats.Msg, error)) (*replymux.Inbox, error) {
	in.muxMu.Lock()
	x := in.mux
	if x == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		x, err = replymux.New(ctx, in.nc, owner)
		cancel()
		if err != nil {
			in.muxMu.Unlock()
			return nil, wire.FromError(err)
		}
		in.mux = x
	}
	in.muxMu.Unlock()
	if x.Owner() != owner {
		return nil, wire.Errorf(wire.KindNoRoute, "this dispatch serves %s, not %s", x.Owner(), owner)
	}
	return x.Listen(peer, fn)
}

// checkStreamIdle refuses a stream idle timeout the wire cannot carry
// (wire.HeaderIdle's bounds), which every stream's peer would refuse.
func checkStreamIdle(d time.Duration) error {
	if d != 0 && (d < wire.MinStreamIdle || d > wire.MaxStreamIdle) {
		return fmt.Errorf("pipeline: stream idle timeout %v: it must be from %v to %v (0: the default, %v)",
			d, wire.MinStreamIdle, wire.MaxStreamIdle, wire.DefaultStreamIdle)
	}
	return nil
}

// callTimeout is the deadline a message propagates: Mesh-Timeout, or
// gRPC's grpc-timeout for a raw NATS client that speaks it; 0 for none.
func callTimeout(h nats.Header) (time.Duration, error) {
	d, err := wire.Timeout(h)
	if err != nil || d > 0 {
		return d, err
	}
	if v := h.Get("grpc-timeout"); v != "" {
		d, ok := grpcwire.ParseTimeout(v)
		if !ok || d <= 0 {
			return 0, wire.Errorf(wire.KindBadRequest, "bad grpc-timeout %.32q", v)
		}
		return min(d, wire.MaxTimeout), nil
	}
	return 0, nil
}

// respond sends the one reply to m. If the broker refuses it (a max_payload
// smaller than the one the reply was sized for, after a reconnect), the
// caller still gets one answer: a mesh error saying why.
func (in *Inbound) respond(m *nats.Msg, r *Reply, err error) {
	var reply *nats.Msg
	switch {
	case err != nil:
		reply = wire.ErrorMsg(wire.FromError(err))
	case r == nil:
		reply = wire.ErrorMsg(wire.Errorf(wire.KindInternal, "handler returned no reply"))
	default:
		reply = r.Msg()
	}
	reply.Subject = m.Reply
	perr := in.nc.PublishMsg(reply)
	if perr == nil || errors.Is(perr, nats.ErrConnectionClosed) {
		return
	}
	in.log.Warn("sending reply", "subject", m.Subject, "err", perr)
	e := wire.FromError(perr)
	if e.Kind != wire.KindTooLarge {
		e = &wire.Error{Kind: wire.KindInternal, Message: "sending the reply: " + perr.Error()}
	} else {
		e = &wire.Error{Kind: wire.KindUpstream, Message: "the service's reply exceeds max_payload: " + e.Message}
	}
	fallback := wire.ErrorMsg(e)
	fallback.Subject = m.Reply
	if err := in.nc.PublishMsg(fallback); err != nil {
		in.log.Warn("sending error reply", "subject", m.Subject, "err", err)
	}
}

// Close refuses new calls (they are answered overloaded, so the caller may
// retry another instance) and waits for those in flight to be answered, or
// for ctx to end.
func (in *Inbound) Close(ctx context.Context) error {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	// No call is handed to a worker from here on: the idle ones can go,
	// the busy ones go when their call is answered.
	in.stopOnce.Do(func() { close(in.stop) })
	done := make(chan struct{})
	go func() {
		in.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// The streams' inbox goes either way: the streams still in flight at
	// ctx's end fail with it.
	in.muxMu.Lock()
	x := in.mux
	in.mux = nil
	in.muxMu.Unlock()
	if x != nil {
		x.Close()
	}
	return err
}

// subsetOf is the subset a call on subj counts as: the subject's, or for
// a call addressed to this instance, the instance's own when the call
// names it (wire.HeaderSubset); any other name is ignored, so a caller
// cannot have a call counted as a subset the instance is not in.
func (in *Inbound) subsetOf(subj wire.Subject, h nats.Header) string {
	if subj.Instance == "" || in.subset == "" {
		return subj.Subset
	}
	if v := h[wire.HeaderSubset]; len(v) == 1 && v[0] == in.subset {
		return in.subset
	}
	return ""
}
