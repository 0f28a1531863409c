package meshstream

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Listener registers an inbox for the caller's frames in the pair inbox
// of owner (the service called) and peer (its caller): the callee
// instance's replymux.Mux.Listen.
type Listener func(owner, peer string, fn func(*nats.Msg, error)) (*replymux.Inbox, error)

// Server is the callee's side of one call made with the stream protocol:
// the request body, if it streams, and the one answer, whole or streamed.
type Server struct {
	nc     *nats.Conn
	owner  string // the service called
	peer   string // its caller
	cfg    Config
	window int64 // the caller's first credit
	listen Listener
	reply  string
	body   *Body
	// c is the stream, made when the call turns out to be one (its body
	// streams, or its answer does, or it is to confirm): a whole call
	// costs none. It is own, made in the Server's own allocation.
	c     *conn
	own   conn
	onEnd func(error)

	// confirm: the call starts only once its caller confirms it
	// (wire.HeaderConfirm), within take of its arrival.
	confirm bool
	take    time.Duration

	mu       sync.Mutex
	opened   bool // the inbox is registered and the keep-alive runs
	accepted bool // an accept was sent
	answered bool // the answer has begun: Open does nothing more
}

// Streams reports whether m is a call made with the stream protocol (it
// has wire.HeaderStream).
func Streams(m *nats.Msg) bool { return len(m.Header[wire.HeaderStream]) > 0 }

// Serve opens the callee's side of m, a call made with the stream
// protocol: when its body streams it registers the inbox for it (listen)
// and accepts at once. cfg's Window is the credit granted the request
// body; its Idle is the callee's own: the stream keeps the smaller of it
// and the caller's (wire.HeaderIdle), and says which in its accept or
// head frame, so that a caller cannot hold the callee's slot longer than
// its operator allows by saying nothing.
func Serve(nc *nats.Conn, m *nats.Msg, service, caller string, listen Listener, cfg Config) (*Server, error) {
	window, ok := wire.Credit(m.Header.Get(wire.HeaderStream))
	if !ok {
		return nil, wire.Errorf(wire.KindBadRequest, "bad %s %.32q", wire.HeaderStream, m.Header.Get(wire.HeaderStream))
	}
	cfg = cfg.withDefaults(nc)
	idle, err := wire.StreamIdle(m.Header, cfg.Idle)
	if err != nil {
		return nil, err
	}
	cfg.Idle = min(idle, cfg.Idle)
	s := &Server{nc: nc, owner: service, peer: caller, cfg: cfg, window: window, listen: listen, reply: m.Reply}
	if s.take, s.confirm, err = wire.TakeWithin(m.Header); err != nil {
		return nil, err
	}
	switch v := m.Header.Get(wire.HeaderStreamBody); v {
	case "":
		return s, nil
	case "more":
		if len(m.Data) > 0 {
			return nil, wire.Errorf(wire.KindBadRequest, "a request with %s: more has its body in data frames, not in its payload", wire.HeaderStreamBody)
		}
	default:
		return nil, wire.Errorf(wire.KindBadRequest, "bad %s %.32q (want more)", wire.HeaderStreamBody, v)
	}
	s.body = newBody(s.stream(), nil)
	s.body.keepOnClose = true
	// A caller that keeps its stream alive but sends no body holds a
	// slot: each wait for the body's next bytes is bounded, as the
	// listeners bound a client's.
	s.body.maxWait = stallFactor * s.c.cfg.Idle
	if err := s.Open(); err != nil {
		return nil, err
	}
	return s, nil
}

// stream makes the call's stream, once.
func (s *Server) stream() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		s.newConn()
	}
	return s.c
}

// newConn makes the call's stream, under s.mu.
func (s *Server) newConn() {
	s.c = &s.own
	s.c.init(s.nc, s.cfg)
	s.c.credit = s.window
	s.c.setOut(s.reply)
	s.c.onEnd = s.onEnd
	if s.confirm {
		// Set before the keep-alive starts, which enforces it.
		s.c.start = make(chan struct{})
		s.c.startWithin = 2 * s.take
		s.c.startBy = time.Now().Add(s.c.startWithin)
	}
}

// Confirmed reports whether the call was made with wire.HeaderConfirm:
// then it must not start before [Server.AwaitStart] says so.
func (s *Server) Confirmed() bool { return s.confirm }

// AwaitStart opens a call made with wire.HeaderConfirm (an accept, at
// once) and waits for its caller's start frame. An error means the call
// must not run: its caller cancelled it, or sent no start in time (it
// waits wire.HeaderConfirm's value for the accept, counted from its
// send: here that, and as long again for the message's way, from its
// arrival), or the stream failed; [Server.Fail] tells the caller. A call made
// without wire.HeaderConfirm returns at once.
func (s *Server) AwaitStart() error {
	if !s.confirm {
		return nil
	}
	// The wait is the keep-alive's timer's (conn.tick, from startBy):
	// no timer of its own for every call.
	c := s.stream()
	if err := s.Open(); err != nil {
		return err
	}
	select {
	case <-c.start:
		return nil
	case <-c.done:
		if err := c.failed(); err != nil {
			return err
		}
		return errClosed
	}
}

// Open opens the call before its answer, once: it sends the accept frame
// that names the callee's inbox (and grants the request body its
// credit), so the caller can cancel the call and the keep-alives run. A
// call whose body streams is opened by Serve; any other may be, when its
// answer is slow to come (pipeline.Inbound: after wire.StreamOpenAfter).
// Once the answer has begun it does nothing.
func (s *Server) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted || s.answered {
		return nil
	}
	if err := s.openLocked(); err != nil {
		return err
	}
	h := make(nats.Header, 5)
	h[wire.HeaderStreamInbox] = []string{s.c.in.Subject()}
	h[wire.HeaderCredit] = headerValue(s.c.cfg.Window, &windowValue)
	h[wire.HeaderIdle] = idleValue(s.c.cfg.Idle)
	if !s.c.send(wire.FrameAccept, h, nil) {
		return s.c.overErr()
	}
	s.accepted = true
	return nil
}

// begin marks the answer begun (Open does nothing from then on) and says
// whether the call was opened; ok is false when it has been answered
// already (a Fail): every call gets one answer.
func (s *Server) begin() (opened, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answered {
		return s.opened, false
	}
	s.answered = true
	return s.opened, true
}

// open registers the inbox and starts the keep-alive, once.
func (s *Server) open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openLocked()
}

// openLocked is open under s.mu.
func (s *Server) openLocked() error {
	if s.opened {
		return nil
	}
	if s.c == nil {
		s.newConn()
	}
	in, err := s.listen(s.owner, s.peer, s.c.onMsg)
	if err != nil {
		return err
	}
	s.c.in = in
	s.opened = true
	s.c.keep()
	return nil
}

// AfterBody calls fn once the request body has ended, read or not (its
// end frame has arrived): at once when it came whole.
func (s *Server) AfterBody(fn func()) {
	s.mu.Lock()
	c := s.c
	body := s.body
	s.mu.Unlock()
	if body == nil {
		fn()
		return
	}
	c.whenEnded(fn)
}

// Body is the streamed request body; nil when it came whole.
func (s *Server) Body() *Body { return s.body }

// OnEnd registers fn to be called when the stream ends, with its failure
// (nil when its answer has been sent): the caller cancelled, the stream
// failed. Called once, before the call's stream exists (the handler's
// context's cancel); fn must not call the Server.
func (s *Server) OnEnd(fn func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onEnd = fn
	if s.c != nil {
		s.c.setOnEnd(fn)
	}
}

// Answer sends a whole answer, reply's header and data: one message, or,
// when it does not fit in one, a head and its data in frames. A large
// one is opened first (an accept): its bytes may take longer to reach
// the caller than the caller waits for a first sign of life
// (wire.DefaultTakeWithin), which the accept, small, gives it at once.
func (s *Server) Answer(reply *nats.Msg) error {
	if len(reply.Data) > openAbove {
		// An Open that fails fails the stream: the answer below says so.
		s.Open()
	}
	opened, ok := s.begin()
	if !ok {
		return nil
	}
	if !opened {
		err := s.nc.PublishMsg(&nats.Msg{Subject: s.reply, Header: reply.Header, Data: reply.Data})
		if err == nil {
			if s.c != nil {
				s.c.finish()
			}
			return nil
		}
		if !errors.Is(err, nats.ErrMaxPayload) {
			return s.failWith(wire.FromError(err))
		}
		// Too large for one message: its bytes as a stream.
	} else {
		if int64(headerSize(reply.Header)+len(reply.Data))+headerRoom <= s.nc.MaxPayload() {
			h := make(nats.Header, len(reply.Header)+2)
			for k, v := range reply.Header {
				h[k] = v
			}
			if !s.c.send(wire.FrameReply, h, reply.Data) {
				return s.c.overErr()
			}
			s.c.finish()
			return nil
		}
	}
	return s.answerStream(reply.Header, &bytesSource{b: reply.Data})
}

// failWith answers e when the answer itself could not be sent, and
// returns e.
func (s *Server) failWith(e *wire.Error) error {
	msg := wire.ErrorMsg(&wire.Error{Kind: wire.KindUpstream, Message: "the service's answer could not be sent: " + e.Message})
	msg.Subject = s.reply
	s.nc.PublishMsg(msg)
	if s.c != nil {
		s.c.finish()
	}
	return e
}

// AnswerStream sends a streamed answer: a head frame with head, then
// body in data frames within the caller's credit, then an end frame with
// body's trailer. It returns when the answer is sent or the stream has
// ended; body is not closed.
func (s *Server) AnswerStream(head nats.Header, body Source) error {
	if _, ok := s.begin(); !ok {
		return nil
	}
	return s.answerStream(head, body)
}

func (s *Server) answerStream(head nats.Header, body Source) error {
	if err := s.open(); err != nil {
		return err
	}
	h := make(nats.Header, len(head)+3)
	for k, v := range head {
		h[k] = v
	}
	h[wire.HeaderStreamInbox] = []string{s.c.in.Subject()}
	h[wire.HeaderIdle] = idleValue(s.c.cfg.Idle)
	if !s.c.send(wire.FrameHead, h, nil) {
		return s.c.overErr()
	}
	if err := s.c.sendBody(body, nil); err != nil {
		return err
	}
	if s.body != nil && !s.c.peerEnded() {
		// Answered before the request body ended: the caller stops
		// sending it.
		s.c.send(wire.FrameCancel, nil, nil)
	}
	s.c.finish()
	return nil
}

// Fail answers with a mesh error: an error reply before the stream was
// opened, a cancel frame carrying it after.
func (s *Server) Fail(e *wire.Error) {
	opened, ok := s.begin()
	if !ok {
		return
	}
	if !opened {
		msg := wire.ErrorMsg(e)
		msg.Subject = s.reply
		s.nc.PublishMsg(msg)
		if s.c != nil {
			s.c.finish()
		}
		return
	}
	s.c.fail(e, true)
}

// Err is why the stream failed, nil if it has not.
func (s *Server) Err() error {
	s.mu.Lock()
	c := s.c
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.failed()
}

// openAbove is the size of a whole answer past which Answer opens the
// call first: 64 KB cross a link of 256 KB/s within the 300 ms a caller
// waits by default for a sign of life, its callee's 100 ms included.
const openAbove = 64 << 10

// bytesSource is a whole body as a Source.
type bytesSource struct {
	b    []byte
	done bool
}

func (b *bytesSource) Next(context.Context) ([]byte, error) {
	if b.done {
		return nil, io.EOF
	}
	b.done = true
	return b.b, nil
}
func (b *bytesSource) Trailer() nats.Header { return nil }
func (b *bytesSource) Close() error         { return nil }
