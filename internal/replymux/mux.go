package replymux

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/wire"
)

// ErrClosed fails the calls in flight when [Mux.Close] is called, and the
// calls made after it. It wraps nats.ErrConnectionClosed, so that
// wire.FromError reads it as a lost connection, like a call in flight when
// nats.go closes its connection.
var ErrClosed = fmt.Errorf("replymux: closed: %w", nats.ErrConnectionClosed)

// ErrBadPeer is returned for a peer that is not one subject token of
// [A-Za-z0-9_-].
var ErrBadPeer = errors.New("replymux: the peer is not a subject token")

// ErrNotSent is wrapped, besides its cause, by the error of every
// [Mux.Request] that ended before its message was handed to the
// connection: the Mux was closed ([ErrClosed]), the connection refused the
// publish (closed, draining, a message too large), the context had ended,
// a bad argument. Nothing was sent, so the call did not run: wire.FromError
// reads ErrClosed and a closed connection as a lost connection (the call
// may have run) unless the caller checks for ErrNotSent first.
var ErrNotSent = errors.New("replymux: nothing sent")

// ErrRefused is wrapped, with the broker's permissions violation
// (nats.ErrPermissionViolation), by New's error when the broker refuses
// the Mux's subscription: the connection's user may not subscribe the
// owner's inbox, so no reply could reach a call.
var ErrRefused = errors.New("replymux: the broker refuses the reply subscription")

// notSent is a Request's error before anything was sent: its message is
// the cause's.
type notSent struct{ err error }

func (e notSent) Error() string   { return e.err.Error() }
func (e notSent) Unwrap() []error { return []error{e.err, ErrNotSent} }

// flushTimeout bounds New's flush when its context has no deadline.
const flushTimeout = 5 * time.Second

// idLen is the length of a Mux's random id: 62^16 (95 bits), so no two
// Muxes of an owner share one.
const idLen = 16

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// noRespondersStatus is the Status header value of the message nats-server
// sends to the reply subject of a request no one subscribes to (nats.go's
// noResponders, checked as RequestMsgWithContext does).
const (
	statusHeader       = "Status"
	noRespondersStatus = "503"
)

// Mux sends requests on one NATS connection for one owner and receives
// their replies on one subscription. Its methods are safe for concurrent
// use.
type Mux struct {
	nc    *nats.Conn
	owner string
	// prefix is wire.InboxPrefix(owner) + ".": every reply subject is
	// prefix + peer + "." + id + "." + n + "-" + nonce.
	prefix string
	id     string
	n      atomic.Uint64
	// rng makes the nonces: ChaCha8 (a CSPRNG) seeded from crypto/rand,
	// without an allocation per call.
	rngMu sync.Mutex
	rng   *mrand.ChaCha8

	sub    *nats.Subscription
	status chan nats.Status
	done   chan struct{} // closed by Close: the watcher returns
	exited chan struct{} // closed when the watcher has returned

	mu      sync.Mutex
	waiting map[string]*receiver // by the whole reply subject
	inboxes map[string]*Inbox    // by their whole subject
	closed  bool
	// closeErr ends the calls in flight at Close or Fail, and those made
	// after: ErrClosed, or Fail's error.
	closeErr error
}

// receiver is what one reply subject delivers to. A unary call's takes
// one message and is then unregistered (once); a message that finds its
// channel full is dropped, as nats.go drops a second reply to a request.
// A receiver ended without a message (the connection lost or closed, the
// Mux closed) gets a nil message, err saying why.
type receiver struct {
	ch   chan *nats.Msg
	once bool
	err  error // set, under Mux.mu, before a nil message is sent
	// inbox, set under Mux.mu when the first message is a stream frame
	// (wire.FrameOf), receives the messages after it.
	inbox *Inbox
	// timer bounds a CallWithin's wait, made at the receiver's first;
	// stopped while the receiver is in the pool.
	timer *time.Timer
	// late, on the receiver that stands for a call given up as silent
	// ([Mux.CallLate]), takes the first message that comes after all.
	late func(*nats.Msg)
}

var receivers = sync.Pool{New: func() any { return &receiver{ch: make(chan *nats.Msg, 1), once: true} }}

// ErrSilent is CallWithin's error when no reply came within its bound.
var ErrSilent = errors.New("replymux: no reply within the bound")

// New returns the Mux of owner on nc: it subscribes to
// wire.PairInbox(owner, "*") + "." + id + ".*", id being a new random token,
// and watches nc's status to fail the calls in flight when the connection
// closes. owner is a service, caller or gateway name ([wire.ValidateName]);
// nc's user must be allowed to subscribe to wire.InboxPrefix(owner)+".>".
//
// New flushes the subscription (within ctx, or 5s when ctx has no
// deadline) so that a refusal is known before any call is sent:
// nats-server answers a subscription outside the user's permissions with
// an -ERR before the PONG, which nats.go records as the connection's last
// error before the flush returns. New then fails with [ErrRefused]. A
// refusal it cannot tell (the flush failed, or another error came between)
// reaches the connection's async error handler only: see [Mux.Fail].
func New(ctx context.Context, nc *nats.Conn, owner string) (*Mux, error) {
	if nc == nil {
		return nil, nats.ErrInvalidConnection
	}
	if err := wire.ValidateName("owner", owner); err != nil {
		return nil, fmt.Errorf("replymux: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return nil, fmt.Errorf("replymux: %w", err)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("replymux: %w", err)
	}
	x := &Mux{
		rng:     mrand.NewChaCha8(seed),
		nc:      nc,
		owner:   owner,
		prefix:  wire.InboxPrefix(owner) + ".",
		id:      id,
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		waiting: make(map[string]*receiver),
		inboxes: make(map[string]*Inbox),
	}
	// The listener first: a close between the subscription and it would
	// go unseen by the calls made meanwhile.
	x.status = nc.StatusChanged(nats.CLOSED)
	before := nc.LastError()
	x.sub, err = nc.Subscribe(x.Subject(), x.dispatch)
	if err != nil {
		nc.RemoveStatusListener(x.status)
		return nil, fmt.Errorf("replymux: subscribing %s: %w", x.Subject(), err)
	}
	if err := x.refused(ctx, before); err != nil {
		x.sub.Unsubscribe()
		nc.RemoveStatusListener(x.status)
		return nil, err
	}
	go x.watch()
	return x, nil
}

// refused flushes the Mux's subscription and returns an error wrapping
// ErrRefused if the broker refused it, before being the connection's last
// error before the subscription.
func (x *Mux) refused(ctx context.Context, before error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if x.nc.FlushWithContext(ctx) != nil {
		return nil // unknown: the async error handler may still tell
	}
	last := x.nc.LastError()
	if !x.Refuses(last) || last == before { // a violation is a pointer: comparable
		return nil
	}
	return fmt.Errorf("%w %s: %w", ErrRefused, x.Subject(), last)
}

// Refuses reports whether err is the broker's refusal of the Mux's
// subscription (a permissions violation for its subject), as the
// connection's async error handler receives it.
func (x *Mux) Refuses(err error) bool {
	v, ok := natsconn.ParseViolation(err)
	return ok && v.Subscribe && v.Subject == x.Subject() && v.Queue == ""
}

// randomID returns idLen base62 characters from crypto/rand, unbiased.
func randomID() (string, error) {
	var out [idLen]byte
	var buf [2 * idLen]byte
	for n := 0; n < idLen; {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 248 = 4*62: the bytes at or above it would favour the first
			// eight digits.
			if b < 248 && n < idLen {
				out[n] = base62[b%62]
				n++
			}
		}
	}
	return string(out[:]), nil
}

// Owner is the owner the Mux receives replies for.
func (x *Mux) Owner() string { return x.owner }

// ID is the Mux's random token, the fourth token of its reply subjects.
func (x *Mux) ID() string { return x.id }

// Subject is the subject the Mux subscribes to:
// "_INBOX_mesh.<owner>.*.<id>.*".
func (x *Mux) Subject() string { return x.prefix + "*." + x.id + ".*" }

// Request sends m (its subject, header and data; m itself is not changed)
// with a reply subject in the pair inbox of the Mux's owner and peer, and
// returns the first reply. peer is who answers: the service called, or a
// reserved peer (wire.PeerNATS for a NATS-native responder).
//
// Its errors are those of nats.go's RequestMsgWithContext: ctx's error
// when ctx ends first (also before sending), nats.ErrNoResponders when
// the server reports that no one subscribes to m's subject, the errors of
// publishing m (nats.ErrConnectionClosed, nats.ErrMaxPayload, ...),
// nats.ErrConnectionClosed when the connection closes while the call
// waits (the call may have run), and [ErrClosed] when the Mux is closed
// (Fail's error when it failed); [ErrBadPeer] for a peer that is no
// subject token. Every error returned before m was handed to the
// connection also wraps [ErrNotSent]. A call in flight
// when the connection is lost goes on waiting, as nats.go's does: nats.go
// subscribes the Mux again when it reconnects, and a reply published
// after that still completes the call.
func (x *Mux) Request(ctx context.Context, m *nats.Msg, peer string) (*nats.Msg, error) {
	msg, in, err := x.Call(ctx, m, peer)
	if in != nil {
		in.Close()
	}
	return msg, err
}

// Call is Request for a call whose answer may be a stream: when the first
// reply is a stream frame (it has wire.HeaderFrame), the reply subject
// stays registered and rest receives the messages after it, in order
// (queued until [Inbox.Listen]); the caller closes rest. rest is nil
// otherwise.
func (x *Mux) Call(ctx context.Context, m *nats.Msg, peer string) (first *nats.Msg, rest *Inbox, err error) {
	return x.CallWithin(ctx, m, peer, 0)
}

// CallWithin is Call whose wait for the first reply also ends, with
// [ErrSilent], after within (0: no bound but ctx's), without a context of
// its own: a bound every call has costs no allocation. The bound runs
// from when the broker has m: a message over 64 KB, which may take longer
// than within to cross a thin link, is flushed first (one round trip to
// the broker).
func (x *Mux) CallWithin(ctx context.Context, m *nats.Msg, peer string, within time.Duration) (first *nats.Msg, rest *Inbox, err error) {
	return x.CallLate(ctx, m, peer, within, nil)
}

// CallLate is CallWithin whose reply subject, once the wait has ended
// with [ErrSilent], stays registered until ctx ends: late (when not nil)
// is called with the first message that comes on it then, a reply or a
// stream's first frame the caller gave up on (later ones are dropped).
// late runs on the Mux's dispatch goroutine: it must not block.
func (x *Mux) CallLate(ctx context.Context, m *nats.Msg, peer string, within time.Duration, late func(*nats.Msg)) (first *nats.Msg, rest *Inbox, err error) {
	if ctx == nil {
		return nil, nil, notSent{nats.ErrInvalidContext}
	}
	if m == nil {
		return nil, nil, notSent{nats.ErrInvalidMsg}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, notSent{err}
	}
	reply, r, err := x.start(peer)
	if err != nil {
		return nil, nil, notSent{err}
	}
	if err := x.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Reply: reply, Header: m.Header, Data: m.Data}); err != nil {
		x.cancel(reply, r)
		return nil, nil, notSent{err}
	}
	if within > 0 && len(m.Data) > flushAbove {
		x.flush(ctx)
	}
	return x.wait(ctx, reply, r, within, late)
}

// flushAbove is the size of a message past which CallWithin waits for
// the broker to have it before its bound runs: 64 KB cross a link of
// 256 KB/s within 250 ms.
const flushAbove = 64 << 10

// flush waits, within ctx, until the broker has what was published on
// the connection so far. A flush that fails (the connection lost, ctx
// ended) leaves the wait that follows to tell.
func (x *Mux) flush(ctx context.Context) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	x.nc.FlushWithContext(ctx)
}

// start registers a unary receiver under a new reply subject to peer.
func (x *Mux) start(peer string) (string, *receiver, error) {
	if !validToken(peer) {
		return "", nil, fmt.Errorf("%w: %q", ErrBadPeer, peer)
	}
	reply := x.replySubject(peer)
	r := receivers.Get().(*receiver)
	if err := x.register(reply, r); err != nil {
		receivers.Put(r)
		return "", nil, err
	}
	return reply, r, nil
}

// wait returns the reply that r receives, or the reason it ended, or
// ctx's error; r goes back to the pool.
func (x *Mux) wait(ctx context.Context, reply string, r *receiver, within time.Duration, late func(*nats.Msg)) (*nats.Msg, *Inbox, error) {
	var silent <-chan time.Time
	if within > 0 {
		if r.timer == nil {
			r.timer = time.NewTimer(within)
		} else {
			r.timer.Reset(within)
		}
		silent = r.timer.C
	}
	// The timer is stopped before r goes back to the pool, on every path
	// (Go 1.23's timers: no stale tick after Stop).
	select {
	case <-silent:
		x.giveUp(ctx, reply, r, late)
		return nil, nil, ErrSilent
	case msg := <-r.ch:
		if within > 0 {
			r.timer.Stop()
		}
		x.mu.Lock()
		err, in := r.err, r.inbox
		r.err, r.inbox = nil, nil
		x.mu.Unlock()
		receivers.Put(r)
		if msg == nil {
			return nil, nil, err
		}
		if len(msg.Data) == 0 && msg.Header.Get(statusHeader) == noRespondersStatus {
			return nil, nil, nats.ErrNoResponders
		}
		return msg, in, nil
	case <-ctx.Done():
		if within > 0 {
			r.timer.Stop()
		}
		x.cancel(reply, r)
		return nil, nil, ctx.Err()
	}
}

// replySubject returns prefix + peer + "." + id + "." + n + "-" + nonce
// for the next n and a fresh 64-bit random nonce, with one allocation (the
// string) for any names of valid length.
//
// The nonce is what makes a reply subject a secret of its call. Every
// callee learns the Mux's id from the calls it is sent, and a service's
// key can have JetStream's direct get deliver a message to any subject of
// its account (docs/security.md, "The policy store"): with counters alone,
// a callee could guess the reply subject of a call its caller made to
// another service and complete it with that message.
func (x *Mux) replySubject(peer string) string {
	x.rngMu.Lock()
	nonce := x.rng.Uint64()
	x.rngMu.Unlock()
	var buf [192]byte
	b := append(buf[:0], x.prefix...)
	b = append(b, peer...)
	b = append(b, '.')
	b = append(b, x.id...)
	b = append(b, '.')
	b = strconv.AppendUint(b, x.n.Add(1), 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, nonce, 36)
	return string(b)
}

// register makes r the receiver of the messages on subject.
func (x *Mux) register(subject string, r *receiver) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return x.closeErr
	}
	x.waiting[subject] = r
	return nil
}

// cancel unregisters r from subject and drains what was sent to it, so
// that it goes back to the pool empty, and puts it back. Messages are sent
// to a receiver under x.mu, so once cancel holds it nothing more comes.
func (x *Mux) cancel(subject string, r *receiver) { x.giveUp(nil, subject, r, nil) }

// giveUp is cancel for a call given up as silent whose late first
// message goes to late (when not nil), until ctx ends: a receiver of its
// own (r goes back to the pool) stands for the call meanwhile. A message
// that came just as the wait ended goes to late at once.
func (x *Mux) giveUp(ctx context.Context, subject string, r *receiver, late func(*nats.Msg)) {
	x.mu.Lock()
	var raced *nats.Msg
	select {
	case raced = <-r.ch:
	default:
	}
	if x.waiting[subject] == r {
		delete(x.waiting, subject)
		if late != nil && !x.closed && ctx.Err() == nil {
			lr := &receiver{late: late}
			x.waiting[subject] = lr
			context.AfterFunc(ctx, func() {
				x.mu.Lock()
				if x.waiting[subject] == lr {
					delete(x.waiting, subject)
				}
				x.mu.Unlock()
			})
		}
	}
	r.err = nil
	in := r.inbox
	r.inbox = nil
	x.mu.Unlock()
	if in != nil {
		in.Close()
	}
	receivers.Put(r)
	if raced != nil && late != nil {
		late(raced)
	}
}

// dispatch delivers a message to the receiver of its whole subject, and
// drops it when there is none: a late reply, a second one, or one that
// another peer put in its own pair inbox under the Mux's id.
func (x *Mux) dispatch(m *nats.Msg) {
	x.mu.Lock()
	r := x.waiting[m.Subject]
	if r == nil {
		in := x.inboxes[m.Subject]
		x.mu.Unlock()
		if in != nil {
			in.deliver(m, nil)
		}
		return
	}
	if r.late != nil {
		delete(x.waiting, m.Subject)
		x.mu.Unlock()
		r.late(m)
		return
	}
	if r.once {
		delete(x.waiting, m.Subject)
		if wire.FrameOf(m.Header) != "" {
			// The first message of a stream: what follows goes to an
			// inbox on the same subject.
			r.inbox = &Inbox{x: x, subject: m.Subject}
			x.inboxes[m.Subject] = r.inbox
		}
	}
	select {
	case r.ch <- m:
	default:
	}
	x.mu.Unlock()
}

// failAll ends every receiver with err.
func (x *Mux) failAll(err error) {
	x.mu.Lock()
	for subject, r := range x.waiting {
		delete(x.waiting, subject)
		r.err = err
		select {
		case r.ch <- nil:
		default:
		}
	}
	var ins []*Inbox
	for subject, in := range x.inboxes {
		delete(x.inboxes, subject)
		ins = append(ins, in)
	}
	x.mu.Unlock()
	for _, in := range ins {
		in.deliver(nil, err)
	}
}

// watch fails the calls in flight with nats.ErrConnectionClosed when the
// connection closes, as nats.go fails its own requests then. It returns
// then, or at Close.
func (x *Mux) watch() {
	defer close(x.exited)
	select {
	case <-x.done:
	case s, ok := <-x.status:
		if ok && s == nats.CLOSED {
			x.failAll(nats.ErrConnectionClosed)
		}
	}
}

// Close unsubscribes, stops watching the connection and fails the calls
// in flight, and those made after it, with [ErrClosed]. It is safe to call
// more than once; an unsubscription refused because the connection is
// closed is no error.
func (x *Mux) Close() error { return x.closeWith(ErrClosed) }

// Fail closes the Mux as Close does, but fails the calls in flight, and
// those made after it, with err: for a Mux whose subscription the broker
// refused after New (see [Mux.Refuses]), whose calls would otherwise wait
// for their deadlines. After Close it does nothing.
func (x *Mux) Fail(err error) error { return x.closeWith(err) }

func (x *Mux) closeWith(cause error) error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		<-x.exited
		return nil
	}
	x.closed, x.closeErr = true, cause
	x.mu.Unlock()
	close(x.done)
	<-x.exited
	x.nc.RemoveStatusListener(x.status)
	err := x.sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil
	}
	x.failAll(cause)
	return err
}

// validToken reports whether s is one subject token of [A-Za-z0-9_-].
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
