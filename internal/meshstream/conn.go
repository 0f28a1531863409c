package meshstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Source is a body to send, piece by piece: pipeline.Stream's shape.
type Source interface {
	Next(ctx context.Context) ([]byte, error)
	Trailer() nats.Header
	Close() error
}

// Config tunes a stream. Zero values take the defaults noted.
type Config struct {
	// Window is the credit this side grants its peer at first and the most
	// body it holds unread. Default wire.DefaultStreamWindow.
	Window int64
	// Chunk is the largest piece of body one frame carries. Default
	// wire.DefaultStreamChunk, at most the connection's max_payload less
	// room for the frame's header.
	Chunk int
	// Idle is how long the stream may hear nothing from its peer. The
	// caller's is the stream's: it sends it to the callee (wire.HeaderIdle).
	// Default wire.DefaultStreamIdle.
	Idle time.Duration
	// Take is a caller's bound on the wait for a call's first sign of
	// life, shared by its calls ([NewTake]). Default: one of
	// wire.DefaultTakeWithin for this call alone. A callee has none.
	Take *Take
}

// headerRoom is what a frame's header may take of max_payload.
const headerRoom = 8 << 10

func (c Config) withDefaults(nc *nats.Conn) Config {
	if c.Window <= 0 {
		c.Window = wire.DefaultStreamWindow
	}
	if c.Idle <= 0 {
		c.Idle = wire.DefaultStreamIdle
	}
	if c.Chunk <= 0 {
		c.Chunk = wire.DefaultStreamChunk
	}
	if mp := nc.MaxPayload(); mp > 0 && int64(c.Chunk) > mp-headerRoom {
		c.Chunk = int(max(mp-headerRoom, 1024))
	}
	return c
}

// Errors a stream ends with, besides its peer's (a cancel frame's mesh
// error) and the connection's.
var (
	// ErrLost: a frame did not arrive (a gap in its sequence numbers).
	errLost = &wire.Error{Kind: wire.KindConnectionLost, Message: "a stream message was lost (sequence gap)"}
	// errClosed: this side gave the stream up before its end.
	errClosed = &wire.Error{Kind: wire.KindTimeout, Message: "the stream was closed before its end", Err: context.Canceled}
)

// conn is one side of one stream: the frames it sends to its peer's
// subject, those it receives on its inbox, the credit each way, and the
// keep-alive. Its state is guarded by mu; frames arrive on the Mux's
// dispatch goroutine (onMsg), which never blocks.
type conn struct {
	nc  *nats.Conn
	cfg Config
	in  *replymux.Inbox
	// caller is the caller's side: it takes the callee's accept, head and
	// reply frames; the callee takes only body frames.
	caller bool

	// total, when set, ends the stream at that time (the caller's
	// deadline).
	total time.Time

	sendMu  sync.Mutex // orders frames: a sequence number is taken and published under it
	out     string     // the peer's subject; set once before any frame is sent
	sendSeq uint64
	sentAt  atomic.Int64 // unix nanoseconds of the last frame sent

	heardAt atomic.Int64 // unix nanoseconds of the last frame received

	mu       sync.Mutex
	readable chan struct{} // signalled (never closed) when a frame is queued
	writable chan struct{} // signalled (never closed) when credit comes
	credit   int64         // bytes this side may still send
	recvSeq  uint64        // the last sequence number received
	queue    []*nats.Msg   // frames for the reader: accept, head, reply, data, end
	allowed  int64         // body bytes the peer may still send (the credit granted)
	unread   int64         // body bytes queued
	consumed int64         // body bytes read since credit was last granted
	ended    bool          // an end or reply frame was received: nothing more comes to the reader
	peerDone bool          // the peer cancelled or finished: send nothing more
	err      error         // why the stream failed; nil while it lives or after a clean end
	done     chan struct{} // closed when the stream is over, failed or finished
	over     bool
	seen     uint8  // answerFrames received
	afterEnd func() // called once the peer's end frame arrives
	// start, on the callee's side of a call to confirm, is closed when
	// the caller's start frame arrives (nil: no start is expected).
	start   chan struct{}
	started bool
	// startBy is when a call to confirm fails unless started (set before
	// the keep-alive starts, which enforces it).
	startBy     time.Time
	startWithin time.Duration
	onEnd       func(error) // called once the stream is over, with its failure
	// ctx ends when this side stops sending (its body is read under
	// it): made when a body is first sent, since a whole call sends none
	// (a context with its cancel is three allocations a call).
	ctx     context.Context
	cancel  context.CancelFunc
	stopped bool
	// keeper is the keep-alive's timer (keep): a timer, not a goroutine
	// with a ticker, so a call that ends within its first tick costs one
	// timer started and stopped.
	keeper *time.Timer
}

func newConn(nc *nats.Conn, cfg Config) *conn {
	c := new(conn)
	c.init(nc, cfg)
	return c
}

// init readies c, a zero conn, as newConn's.
func (c *conn) init(nc *nats.Conn, cfg Config) {
	c.nc, c.cfg = nc, cfg
	c.readable, c.writable, c.done = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	c.allowed = c.cfg.Window
	now := time.Now().UnixNano()
	c.sentAt.Store(now)
	c.heardAt.Store(now)
}

// sending is the context this side's body is read under: it ends when
// the stream is over or the peer has told this side to stop sending.
func (c *conn) sending() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
		if c.stopped {
			c.cancel()
		}
	}
	return c.ctx
}

// stop ends sending's context, made or not.
func (c *conn) stop() {
	c.mu.Lock()
	c.stopped = true
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// signal wakes whoever waits on ch.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onMsg takes a frame from the inbox (m nil: the connection or Mux ended,
// err says why).
func (c *conn) onMsg(m *nats.Msg, err error) {
	if m == nil {
		c.fail(wire.FromError(err), false)
		return
	}
	c.heardAt.Store(time.Now().UnixNano())
	kind := wire.FrameOf(m.Header)
	c.mu.Lock()
	if c.over {
		c.mu.Unlock()
		return
	}
	seq := wire.FrameSeq(m.Header)
	if seq != c.recvSeq+1 {
		c.mu.Unlock()
		c.fail(&wire.Error{Kind: errLost.Kind, Message: fmt.Sprintf("%s: got frame %d after %d", errLost.Message, seq, c.recvSeq)}, true)
		return
	}
	c.recvSeq = seq
	switch kind {
	case wire.FramePing:
		c.mu.Unlock()
		return
	case wire.FrameCredit:
		n, ok := wire.Credit(m.Header.Get(wire.HeaderCredit))
		if !ok || c.credit+n > wire.MaxStreamWindow {
			c.mu.Unlock()
			c.fail(wire.Errorf(wire.KindBadRequest, "stream: bad credit %.32q", m.Header.Get(wire.HeaderCredit)), true)
			return
		}
		c.credit += n
		c.mu.Unlock()
		signal(c.writable)
		return
	case wire.FrameCancel:
		c.peerDone = true
		ended := c.ended
		c.mu.Unlock()
		if ended {
			// The peer's answer is whole; it tells this side to stop
			// sending.
			c.stop()
			signal(c.writable)
			return
		}
		e := wire.ReplyError(m.Header)
		if e == nil {
			e = &wire.Error{Kind: wire.KindConnectionLost, Message: "the peer ended the stream"}
		}
		c.fail(e, false)
		return
	case wire.FrameStart:
		if c.caller || c.start == nil || c.started {
			c.mu.Unlock()
			c.fail(wire.Errorf(wire.KindBadRequest, "stream: an unexpected start frame"), true)
			return
		}
		c.started = true
		close(c.start)
		c.mu.Unlock()
		return
	case wire.FrameData, wire.FrameEnd:
	case wire.FrameHead, wire.FrameReply, wire.FrameAccept:
		// The callee's, each once, an accept only first: a caller's
		// frames carry body only.
		bit := answerFrames[kind]
		if !c.caller || c.seen&bit != 0 || kind == wire.FrameAccept && c.seen != 0 {
			c.mu.Unlock()
			c.fail(wire.Errorf(wire.KindBadRequest, "stream: an unexpected %s frame", kind), true)
			return
		}
		c.seen |= bit
	default:
		// A kind this side does not know: ignored, so the protocol can
		// grow (its number still counts).
		c.mu.Unlock()
		return
	}
	if c.ended {
		c.mu.Unlock()
		c.fail(wire.Errorf(wire.KindBadRequest, "stream: a %s frame after the end", kind), true)
		return
	}
	if kind == wire.FrameData {
		if len(m.Data) == 0 {
			c.mu.Unlock()
			return // nothing to read: not held
		}
		if headerSize(m.Header) > smallHeader {
			// nats.go keeps a message's header and data in one buffer:
			// a data frame with a large header would hold it beyond the
			// credit. Only the data is kept.
			m = &nats.Msg{Header: dataHeader, Data: append([]byte(nil), m.Data...)}
		} else {
			m.Header = dataHeader
		}
	}
	if len(c.queue) >= maxQueuedFrames {
		c.mu.Unlock()
		c.fail(wire.Errorf(wire.KindBadRequest, "stream: more than %d frames unread", maxQueuedFrames), true)
		return
	}
	n := int64(len(m.Data))
	if kind == wire.FrameData || kind == wire.FrameEnd || kind == wire.FrameHead {
		if n > c.allowed {
			c.mu.Unlock()
			c.fail(wire.Errorf(wire.KindBadRequest, "stream: the peer sent %d bytes past its credit", n-c.allowed), true)
			return
		}
		c.allowed -= n
		c.unread += n
	}
	var afterEnd func()
	if kind == wire.FrameEnd || kind == wire.FrameReply {
		c.ended = true
		afterEnd, c.afterEnd = c.afterEnd, nil
	}
	c.queue = append(c.queue, m)
	c.mu.Unlock()
	signal(c.readable)
	if afterEnd != nil {
		afterEnd()
	}
}

// peerEnded reports whether the peer's body has ended (its end frame
// arrived, read or not).
func (c *conn) peerEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// whenEnded calls fn once the peer's body has ended (its end frame has
// arrived, read or not): at once if it has.
func (c *conn) whenEnded(fn func()) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		fn()
		return
	}
	c.afterEnd = fn
	c.mu.Unlock()
}

// setOnEnd registers fn to be told the stream's end, with its failure;
// at once if it is over.
func (c *conn) setOnEnd(fn func(error)) {
	c.mu.Lock()
	if c.over {
		err := c.err
		c.mu.Unlock()
		fn(err)
		return
	}
	c.onEnd = fn
	c.mu.Unlock()
}

// headerSize is about how many bytes h took on the wire.
func headerSize(h nats.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// answerFrames are the callee's frames that head a call, as bits of
// conn.seen.
var answerFrames = map[string]uint8{wire.FrameAccept: 1, wire.FrameHead: 2, wire.FrameReply: 4}

// dataHeader is the header a queued data frame keeps: only its kind.
var dataHeader = nats.Header{wire.HeaderFrame: {wire.FrameData}}

const (
	// stallFactor times the idle timeout is how long a sender waits for
	// credit before it takes its peer's reader for stopped.
	stallFactor = 6
	// smallHeader is the most header bytes a data frame's buffer may
	// hold beside its data before the data is copied out.
	smallHeader = 1 << 10
	// maxQueuedFrames bounds the frames a side holds unread.
	maxQueuedFrames = 4096
)

// next returns the next frame for the reader, waiting for it within ctx.
// Frames that arrived before a failure are returned first, then the
// failure.
func (c *conn) next(ctx context.Context) (*nats.Msg, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return m, nil
		}
		err := c.err
		over := c.over
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if over {
			return nil, errClosed
		}
		select {
		case <-c.readable:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// read accounts for n body bytes read, and grants credit back once a
// quarter of the window has been read.
func (c *conn) read(n int) {
	c.mu.Lock()
	c.unread -= int64(n)
	c.consumed += int64(n)
	grant := int64(0)
	if c.consumed >= c.cfg.Window/4 && !c.ended && !c.over {
		grant = c.consumed
		c.consumed = 0
		c.allowed += grant
	}
	c.mu.Unlock()
	if grant > 0 {
		c.send(wire.FrameCredit, nats.Header{wire.HeaderCredit: {strconv.FormatInt(grant, 10)}}, nil)
	}
}

// grantRead grants the peer whatever has been read since credit was last
// granted, if anything.
func (c *conn) grantRead() {
	c.mu.Lock()
	grant := int64(0)
	if c.consumed > 0 && !c.ended && !c.over {
		grant = c.consumed
		c.consumed = 0
		c.allowed += grant
	}
	c.mu.Unlock()
	if grant > 0 {
		c.send(wire.FrameCredit, nats.Header{wire.HeaderCredit: {strconv.FormatInt(grant, 10)}}, nil)
	}
}

// send publishes one frame to the peer; false when the stream is over or
// the publish failed (the stream then fails).
func (c *conn) send(kind string, h nats.Header, data []byte) bool {
	if h == nil {
		h = make(nats.Header, 2)
	}
	c.sendMu.Lock()
	if c.out == "" {
		c.sendMu.Unlock()
		return false
	}
	c.sendSeq++
	h[wire.HeaderFrame] = frameValue(kind)
	h[wire.HeaderSeq] = seqValue(c.sendSeq)
	err := c.nc.PublishMsg(&nats.Msg{Subject: c.out, Header: h, Data: data})
	c.sentAt.Store(time.Now().UnixNano())
	c.sendMu.Unlock()
	if err != nil {
		// The peer is told, where a smaller frame still goes (a frame
		// past a max_payload that shrank at a reconnect).
		c.fail(wire.FromError(err), kind != wire.FrameCancel)
		return false
	}
	return true
}

// setOut sets the peer's subject, once.
func (c *conn) setOut(subject string) {
	c.sendMu.Lock()
	if c.out == "" {
		c.out = subject
	}
	c.sendMu.Unlock()
}

// fail ends the stream with err, once; tell sends the peer a cancel frame
// carrying it.
func (c *conn) fail(err *wire.Error, tell bool) { c.failUnless(err, tell, false) }

// failUnless is fail, but when unlessStarted and the call to confirm has
// had its start frame, it does nothing and reports false. The start frame
// is taken under the same lock (onMsg): a call is either started or
// failed not started, never both (TestStartBoundIsOneDecision).
func (c *conn) failUnless(err *wire.Error, tell, unlessStarted bool) bool {
	c.mu.Lock()
	if c.over || unlessStarted && c.started {
		c.mu.Unlock()
		return false
	}
	c.over, c.err = true, err
	peerDone := c.peerDone
	c.mu.Unlock()
	if tell && !peerDone {
		c.send(wire.FrameCancel, wire.ErrorMsg(err).Header, nil)
	}
	c.release()
	return true
}

// finish ends the stream cleanly, once.
func (c *conn) finish() {
	c.mu.Lock()
	if c.over {
		c.mu.Unlock()
		return
	}
	c.over = true
	c.mu.Unlock()
	c.release()
}

func (c *conn) release() {
	c.stop()
	c.mu.Lock()
	fn, err := c.onEnd, c.err
	c.onEnd = nil
	if c.keeper != nil {
		c.keeper.Stop()
	}
	c.mu.Unlock()
	if fn != nil {
		fn(err)
	}
	if c.in != nil {
		c.in.Close()
	}
	close(c.done)
}

// failed is the stream's failure, nil while it lives or after a clean end.
func (c *conn) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// keep starts the keep-alive: at every tick (a sixth of the idle
// timeout) it grants back the credit read, sends a ping when this side
// has sent nothing for a third of the idle timeout, and fails the stream
// when it has heard nothing for the idle timeout, or its total deadline
// has passed. It runs on a timer's goroutine, only while the stream
// lives (release stops it).
func (c *conn) keep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over || c.keeper != nil {
		return
	}
	c.keeper = time.AfterFunc(c.nextTick(time.Now()), c.tick)
}

// nextTick is the wait from now to the keep-alive's next tick: a sixth
// of the idle timeout, or the total deadline or the start's when that
// comes first. Under c.mu.
func (c *conn) nextTick(now time.Time) time.Duration {
	d := c.cfg.Idle / 6
	if !c.total.IsZero() {
		d = min(d, c.total.Sub(now))
	}
	if !c.startBy.IsZero() && !c.started {
		d = min(d, c.startBy.Sub(now))
	}
	return max(d, 0)
}

// isStarted reports whether a call to confirm has had its start frame.
func (c *conn) isStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// tick is one tick of the keep-alive (keep).
func (c *conn) tick() {
	now := time.Now()
	if !c.total.IsZero() && !now.Before(c.total) {
		// The callee has the same deadline: it is not told.
		c.fail(&wire.Error{Kind: wire.KindTimeout, Message: "the stream passed its deadline"}, false)
		return
	}
	if !c.startBy.IsZero() && !now.Before(c.startBy) && !c.isStarted() &&
		// The caller is told: it may still wait for the call. A start
		// frame that came since isStarted wins.
		c.failUnless(&wire.Error{Kind: wire.KindTimeout, Message: fmt.Sprintf("not started: its caller did not confirm it to this instance within %v", c.startWithin)}, true, true) {
		return
	}
	// A slow reader's credit goes back at each tick, however little it
	// has read: only one that reads nothing for the idle timeout stalls
	// its peer into failing.
	c.grantRead()
	if now.UnixNano()-c.heardAt.Load() > int64(c.cfg.Idle) {
		// Its agent, or the broker between, is gone: the connection is
		// lost (the call may have run).
		c.fail(&wire.Error{Kind: wire.KindConnectionLost, Message: fmt.Sprintf("the stream's peer was silent for %v (idle timeout): its agent or the broker is gone", c.cfg.Idle)}, true)
		return
	}
	if now.UnixNano()-c.sentAt.Load() >= int64(c.cfg.Idle/3) {
		c.send(wire.FramePing, nil, nil)
	}
	c.mu.Lock()
	if !c.over {
		// Under mu, so release, which stops the timer once over is set,
		// never has it armed again after.
		c.keeper.Reset(c.nextTick(now))
	}
	c.mu.Unlock()
}

// sendBody sends src to the peer in data frames within the credit it
// grants, then an end frame with src's trailer; src is read under the
// stream's context. A failure of src cancels the stream (the peer is told
// why). It returns when the body is sent or the stream is over.
func (c *conn) sendBody(src Source, first []byte) error {
	if first != nil {
		if err := c.sendPiece(first); err != nil {
			return err
		}
	}
	ctx := c.sending()
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			h := src.Trailer()
			trailer := make(nats.Header, len(h)+2)
			for k, v := range h {
				trailer[k] = v
			}
			if !c.send(wire.FrameEnd, trailer, nil) {
				return c.overErr()
			}
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return c.overErr()
			}
			e := wire.FromError(err)
			c.fail(e, true)
			return e
		}
		if err := c.sendPiece(b); err != nil {
			return err
		}
	}
}

// sendPiece sends b in frames of at most Chunk bytes, each within the
// credit.
func (c *conn) sendPiece(b []byte) error {
	for len(b) > 0 {
		n, err := c.take(min(len(b), c.cfg.Chunk))
		if err != nil {
			return err
		}
		if !c.send(wire.FrameData, nil, b[:n]) {
			return c.overErr()
		}
		b = b[n:]
	}
	return nil
}

// take waits for credit and takes up to n bytes of it. A peer that grants
// none for stallFactor idle timeouts fails the stream: its reader
// stopped. (Slower is not stopped: a client reading at 100 KB/s behind a
// kernel's socket buffer of megabytes reads nothing new for many seconds
// at a time; the receiving agent's own write timeout ends a client that
// stopped, and the keep-alives end a peer that is gone.)
func (c *conn) take(n int) (int, error) {
	var stall *time.Timer
	for {
		c.mu.Lock()
		if c.over || c.peerDone {
			c.mu.Unlock()
			return 0, c.overErr()
		}
		if c.credit > 0 {
			n = int(min(int64(n), c.credit))
			c.credit -= int64(n)
			c.mu.Unlock()
			if stall != nil {
				stall.Stop()
			}
			return n, nil
		}
		c.mu.Unlock()
		if stall == nil {
			stall = time.NewTimer(stallFactor * c.cfg.Idle)
			defer stall.Stop()
		}
		select {
		case <-c.writable:
		case <-c.done:
		case <-stall.C:
			e := &wire.Error{Kind: wire.KindTimeout, Message: fmt.Sprintf("the stream's peer granted no credit for %v (it stopped reading)", stallFactor*c.cfg.Idle)}
			c.fail(e, true)
			return 0, e
		}
	}
}

// overErr is why sending stopped: the stream's failure, or that it is
// over.
func (c *conn) overErr() error {
	if err := c.failed(); err != nil {
		return err
	}
	return errClosed
}

// The header values of the frame kinds and of the first sequence numbers,
// made once: values are shared, never written (nats.go only reads them).
var (
	frameValues = map[string][]string{}
	seqValues   [64][]string
)

func init() {
	for _, k := range []string{wire.FrameAccept, wire.FrameHead, wire.FrameReply, wire.FrameData, wire.FrameEnd,
		wire.FrameCredit, wire.FramePing, wire.FrameCancel, wire.FrameStart} {
		frameValues[k] = []string{k}
	}
	for i := range seqValues {
		seqValues[i] = []string{strconv.Itoa(i)}
	}
}

func frameValue(kind string) []string {
	if v, ok := frameValues[kind]; ok {
		return v
	}
	return []string{kind}
}

func seqValue(n uint64) []string {
	if n < uint64(len(seqValues)) {
		return seqValues[n]
	}
	return []string{strconv.FormatUint(n, 10)}
}
