package meshstream

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Request is one call to send with the stream protocol.
type Request struct {
	// Msg is the request message: its subject, its header (the call's, a
	// map the stream's fields are added to) and, for a whole body, its
	// data.
	Msg *nats.Msg
	// Caller and Service are the two ends: the reply comes in the pair
	// inbox of the caller and the service, and the callee's inbox for the
	// caller's frames must be in the pair inbox of the service and the
	// caller.
	Caller, Service string
	// Body, when set, is the request body, streamed after the request
	// message; nil for a whole body (in Msg.Data). When the stream stops
	// reading it before its end (the callee answered and stopped it, the
	// stream failed), it is closed, so its writer stops too.
	Body Source
	// Deadline, when set, ends the whole stream (the caller's own
	// deadline); the context given to Call bounds only the wait for the
	// answer's head.
	Deadline time.Time
	// Unbounded: once the callee has opened the call (accept), the wait
	// for its head is bounded by the stream's idle timeout and Cancel's
	// end, no longer by ctx's deadline (a default the caller did not
	// choose). ctx's own cancellation before its deadline also ends it.
	Unbounded bool
	// Cancel is the caller's own context, without the default deadline.
	Cancel context.Context
	// Confirm asks the callee to start the call only once this side
	// confirms it (wire.HeaderConfirm): a call that may not run twice.
	Confirm bool
}

// Answer is a call's answer: whole (Msg), or streamed (Head, its header,
// and Body).
type Answer struct {
	// Msg is a whole answer: a unary reply, or a reply frame (its frame
	// fields removed).
	Msg *nats.Msg
	// Head is a streamed answer's header (its frame fields removed), and
	// Body its body.
	Head nats.Header
	Body *Body
}

// Call sends r over mux (whose owner is r.Caller) and returns the answer:
// whole, or streamed once its head has arrived, while a request body may
// still be being sent (full duplex). ctx bounds the wait for the head.
// Errors are those of replymux.Mux.Call, a mesh error a reply or a cancel
// frame carries is returned as the whole Msg (a reply) or a *wire.Error (a
// cancel), and a broken protocol is a *wire.Error.
func Call(ctx context.Context, mux *replymux.Mux, nc *nats.Conn, r Request, cfg Config) (*Answer, error) {
	cfg = cfg.withDefaults(nc)
	if cfg.Take == nil {
		cfg.Take = NewTake(0)
	}
	h := r.Msg.Header
	h[wire.HeaderStream] = headerValue(cfg.Window, &windowValue)
	h[wire.HeaderIdle] = idleValue(cfg.Idle)
	if r.Body != nil {
		h[wire.HeaderStreamBody] = moreValue
	}
	first, rest, err := cfg.Take.send(ctx, mux, nc, r)
	if err != nil || rest == nil {
		// A whole answer (the common case) costs the stream nothing.
		if err != nil {
			return nil, err
		}
		return &Answer{Msg: first}, nil
	}
	c := newConn(nc, cfg)
	c.caller = true
	c.total = r.Deadline
	c.in = rest
	c.onMsg(first, nil)
	// The callee's inbox is known before any later frame is taken, so a
	// failure they show can be told to the callee.
	want := pairInbox{r.Service, r.Caller}
	if kind := wire.FrameOf(first.Header); kind == wire.FrameAccept || kind == wire.FrameHead {
		if err := c.openOut(first.Header, want, kind == wire.FrameAccept); err != nil {
			return nil, err
		}
		if r.Confirm && kind == wire.FrameAccept && !c.send(wire.FrameStart, nil, nil) {
			// Nothing ran: the callee starts nothing until this frame.
			err := c.overErr()
			c.fail(wire.FromError(err), true)
			return nil, err
		}
	}
	rest.Listen(c.onMsg)

	// The pump is made only for a call with a body to send or an answer
	// that streams: a whole call needs none.
	var pump *pump
	wait := ctx
	for {
		if r.Unbounded && wait == ctx && c.opened() {
			var stop func()
			wait, stop = withoutDeadline(ctx, r.Cancel)
			defer stop()
		}
		m, err := c.next(wait)
		if err != nil {
			if wait.Err() != nil {
				// Cancelled: the callee is told. At the deadline it is
				// not: it has the same one, and stops at it (so its
				// service sees its deadline pass, not a cancel).
				c.fail(&wire.Error{Kind: wire.KindTimeout, Message: "no answer before the deadline", Err: wait.Err()},
					!errors.Is(wait.Err(), context.DeadlineExceeded))
			} else {
				c.fail(wire.FromError(err), false)
			}
			return nil, err
		}
		kind := wire.FrameOf(m.Header)
		if (kind == wire.FrameAccept || kind == wire.FrameHead) && m != first {
			if err := c.openOut(m.Header, want, kind == wire.FrameAccept); err != nil {
				return nil, err
			}
		}
		switch kind {
		case wire.FrameAccept:
			if r.Body != nil {
				pump = newPump(c, pump)
				pump.start(r.Body)
			}
		case wire.FrameHead:
			if r.Body != nil && (pump == nil || !pump.started()) {
				e := wire.Errorf(wire.KindBadRequest, "stream: a head before the accept of a streamed request")
				c.fail(e, true)
				return nil, e
			}
			b := newBody(c, m.Data)
			pump = newPump(c, pump)
			b.onEOF = pump.replyEnded
			return &Answer{Head: trailerOf(m.Header), Body: b}, nil
		case wire.FrameReply:
			c.finish()
			// The frame is this side's alone (nats.go decodes each
			// message's header into a map of its own): its frame
			// fields are removed in place.
			delete(m.Header, wire.HeaderFrame)
			delete(m.Header, wire.HeaderSeq)
			return &Answer{Msg: m}, nil
		default:
			e := wire.Errorf(wire.KindBadRequest, "stream: a %s frame before the answer's head", kind)
			c.fail(e, true)
			return nil, e
		}
	}
}

// withoutDeadline is ctx without its deadline: cancelled when ctx is
// cancelled before its deadline passes, or base (the caller's own
// context, when known) is done.
func withoutDeadline(ctx, base context.Context) (context.Context, func()) {
	w, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	stopBase := func() bool { return false }
	if base != nil {
		stopBase = context.AfterFunc(base, cancel)
	}
	return w, func() { stop(); stopBase(); cancel() }
}

// opened reports whether the callee's inbox is known.
func (c *conn) opened() bool {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.out != ""
}

// The header values of the defaults, made once: every call carries them.
var (
	moreValue   = []string{"more"}
	windowValue = []string{strconv.FormatInt(wire.DefaultStreamWindow, 10)}
	idleDefault = []string{wire.DefaultStreamIdle.String()}
)

func headerValue(n int64, def *[]string) []string {
	if n == wire.DefaultStreamWindow {
		return *def
	}
	return []string{strconv.FormatInt(n, 10)}
}

func idleValue(d time.Duration) []string {
	if d == wire.DefaultStreamIdle {
		return idleDefault
	}
	return []string{d.String()}
}

// openOut reads the callee's inbox (and, from an accept, its credit) from
// a frame, once: the inbox must be in the pair inbox of the service and
// the caller, so a callee cannot make the caller publish anywhere else.
func (c *conn) openOut(h nats.Header, want pairInbox, accept bool) error {
	c.sendMu.Lock()
	known := c.out != ""
	c.sendMu.Unlock()
	if known {
		if accept {
			e := wire.Errorf(wire.KindBadRequest, "stream: a second accept")
			c.fail(e, true)
			return e
		}
		return nil
	}
	inbox := h.Get(wire.HeaderStreamInbox)
	if !want.holds(inbox) {
		e := wire.Errorf(wire.KindBadRequest, "stream: the callee's inbox %.80q is not under %s.", inbox, wire.PairInbox(want.service, want.caller))
		c.fail(e, false)
		return e
	}
	if v := h.Get(wire.HeaderIdle); v != "" {
		// The callee keeps a shorter idle timeout: ping often enough.
		if d, err := time.ParseDuration(v); err == nil && d >= wire.MinStreamIdle && d < c.cfg.Idle {
			c.cfg.Idle = d
		}
	}
	if accept {
		n, ok := wire.Credit(h.Get(wire.HeaderCredit))
		if !ok {
			e := wire.Errorf(wire.KindBadRequest, "stream: bad credit %.32q", h.Get(wire.HeaderCredit))
			c.fail(e, false)
			return e
		}
		c.mu.Lock()
		c.credit += n
		c.mu.Unlock()
	}
	c.setOut(inbox)
	c.keep()
	return nil
}

// pairInbox is the pair inbox of a service and its caller, where the
// callee's stream inbox must be, named without building its string (a
// call checks it once or twice, and has it built only to say it is not).
type pairInbox struct{ service, caller string }

// holds reports whether inbox is a stream inbox under the pair inbox
// (wire.PairInbox(service, caller), then a dot): one more token after its
// id, no wildcard, no space.
func (p pairInbox) holds(inbox string) bool {
	rest, ok := wire.CutPairInbox(inbox, p.service, p.caller)
	return ok && !strings.ContainsAny(rest, "*> \t\r\n") && strings.Count(rest, ".") == 1
}

// pump sends a request body and ends the caller's stream once both the
// body is sent and the answer has ended.
type pump struct {
	c *conn

	mu        sync.Mutex
	running   bool
	bodyDone  bool
	replyDone bool
}

// newPump is p, or a new pump for c when p is nil.
func newPump(c *conn, p *pump) *pump {
	if p == nil {
		p = &pump{c: c}
	}
	return p
}

func (p *pump) started() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// start sends src on a goroutine of its own.
func (p *pump) start(src Source) {
	p.mu.Lock()
	p.running = true
	p.mu.Unlock()
	go p.run(src)
}

func (p *pump) run(src Source) {
	if p.c.sendBody(src, nil) != nil {
		// The body is read no further (the callee answered and stopped
		// it, or the stream is over): closed before its end, its sender
		// is told to stop (pipeline.Stream), as a gRPC client's SendMsg
		// learns that its call is over instead of waiting, its stream
		// full, for a reader that is gone (meshgrpc's
		// TestRequestBodyStopped).
		src.Close()
	}
	p.mu.Lock()
	p.bodyDone = true
	done := p.replyDone
	p.mu.Unlock()
	if done {
		p.c.finish()
	}
}

// replyEnded is told that the answer's body was read to its end.
func (p *pump) replyEnded() {
	p.mu.Lock()
	p.replyDone = true
	done := p.bodyDone || !p.running
	p.mu.Unlock()
	if done {
		p.c.finish()
	}
}
