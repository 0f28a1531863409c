package outconn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Conn is what the outbound calls share of one NATS connection: the
// reply muxes of their callers, the connection's state, the requests in
// flight. Make one with [New].
type Conn struct {
	nc    *nats.Conn
	grace time.Duration

	// muxes are the reply muxes by caller, each made at its caller's
	// first call (an agent's or a gateway's calls all have one caller,
	// its own name). Copied on write, so a call finds its mux without a
	// lock; muxMu orders the writers and Close.
	muxes  atomic.Pointer[map[string]*replymux.Mux]
	muxMu  sync.Mutex
	closed bool
	// refused are the callers whose reply subscription the broker
	// refused, and until when their calls fail at once, unsent, without
	// asking it again. Under muxMu.
	refused map[string]time.Time

	// inflight are the requests waiting for a reply, each its message
	// and the cancellation of its context, so that a permissions
	// violation the broker reports for a subject answers the requests on
	// that subject (see hook). Keyed by the message, which each
	// request has anyway, so tracking one allocates nothing; a violation
	// (rare) looks through them all.
	mu       sync.Mutex
	inflight map[*nats.Msg]context.CancelCauseFunc

	// downSince is when the connection was lost (unix nanoseconds), 0
	// while it is up: the reconnect grace runs from it.
	downSince atomic.Int64
}

// New returns the Conn of nc's outbound calls, chaining its handlers in
// front of nc's (see hook). grace is how long a call waits for a lost
// connection to come back ([Conn.Connected]); zero or negative fails at
// once.
func New(nc *nats.Conn, grace time.Duration) *Conn {
	c := &Conn{nc: nc, grace: max(grace, 0), inflight: map[*nats.Msg]context.CancelCauseFunc{}, refused: map[string]time.Time{}}
	c.hook()
	return c
}

// hook chains c's handler in front of the connection's async error
// handler. A publish the broker refuses (a subject outside the user's
// permissions) is dropped by the broker, which reports it only as an
// asynchronous -ERR naming the subject: without this the request would
// wait for its timeout. The handler answers every request in flight on
// that subject with forbidden at once, fails the reply mux whose
// subscription the broker refuses (see refuseMux), then calls the previous
// handler.
func (c *Conn) hook() {
	prevDown := c.nc.DisconnectErrHandler()
	c.nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		c.downSince.Store(time.Now().UnixNano())
		if prevDown != nil {
			prevDown(nc, err)
		}
	})
	prevUp := c.nc.ReconnectHandler()
	c.nc.SetReconnectHandler(func(nc *nats.Conn) {
		c.downSince.Store(0)
		if prevUp != nil {
			prevUp(nc)
		}
	})
	prev := c.nc.ErrorHandler()
	c.nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		c.asyncError(err)
		if prev != nil {
			prev(nc, sub, err)
		}
	})
}

func (c *Conn) asyncError(err error) {
	v, ok := natsconn.ParseViolation(err)
	if !ok {
		return
	}
	if v.Subscribe {
		c.refuseMux(err)
		return
	}
	cause := &wire.Error{Kind: wire.KindForbidden,
		Message: "the broker refused the publish to " + v.Subject + ": the caller's NATS user may not send this call", Err: err}
	c.mu.Lock()
	for m, cancel := range c.inflight {
		if m.Subject == v.Subject {
			cancel(cause)
		}
	}
	c.mu.Unlock()
}

// refusedWait is how long the calls of a caller whose reply subscription
// the broker refused fail at once before the broker is asked again: the
// refusal lasts until its configuration changes.
const refusedWait = time.Minute

// RefusedError is the error of a call of caller whose reply subscription
// the broker refused (cause): forbidden, saying what to do. sent: the
// call was sent before the refusal was known (a subscription the broker
// refused after a reconnect).
func RefusedError(caller string, sent bool, cause error) *wire.Error {
	what := "nothing was sent"
	if sent {
		what = "the call was sent, its reply cannot come"
	}
	return &wire.Error{Kind: wire.KindForbidden, Err: cause,
		Message: fmt.Sprintf("the broker refuses %s's reply subscription: the connection's NATS user may not subscribe %s.>, so no reply can reach %s (%s); "+
			"connect as %s, with its own credentials (natsmesh accounts generate)", caller, wire.InboxPrefix(caller), caller, what, caller)}
}

// refuseMux fails at once the calls in flight on the reply mux whose
// subscription err (an async permissions violation) refuses, instead of
// letting them wait for their deadlines, and forgets the mux: the calls
// of its caller fail at once, unsent, for refusedWait, then the next one
// makes a new mux (and so asks the broker again).
func (c *Conn) refuseMux(err error) {
	c.muxMu.Lock()
	old := c.muxes.Load()
	var caller string
	var x *replymux.Mux
	if old != nil {
		for c, m := range *old {
			if m.Refuses(err) {
				caller, x = c, m
			}
		}
	}
	if x == nil {
		c.muxMu.Unlock()
		return
	}
	m := maps.Clone(*old)
	delete(m, caller)
	c.muxes.Store(&m)
	c.refused[caller] = time.Now().Add(refusedWait)
	c.muxMu.Unlock()
	x.Fail(RefusedError(caller, true, fmt.Errorf("%w %s: %w", replymux.ErrRefused, x.Subject(), err)))
}

// Track records m as in flight until Untrack, with the cancellation of
// its request's context.
func (c *Conn) Track(m *nats.Msg, cancel context.CancelCauseFunc) {
	c.mu.Lock()
	c.inflight[m] = cancel
	c.mu.Unlock()
}

// Untrack forgets m, its request over.
func (c *Conn) Untrack(m *nats.Msg) {
	c.mu.Lock()
	delete(c.inflight, m)
	c.mu.Unlock()
}

// Mux returns the reply mux of caller, made at its first call (within
// ctx: replymux.New flushes its subscription). A subscription the broker
// refuses fails the call at once, unsent, and so do the calls of the same
// caller for refusedWait after (the broker is not asked again before).
func (c *Conn) Mux(ctx context.Context, caller string) (*replymux.Mux, error) {
	if m := c.muxes.Load(); m != nil {
		if x := (*m)[caller]; x != nil {
			return x, nil
		}
	}
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if c.closed {
		return nil, &wire.Error{Kind: wire.KindBrokerUnavailable, Message: "the outbound pipeline is closed"}
	}
	old := c.muxes.Load()
	if old != nil {
		if x := (*old)[caller]; x != nil {
			return x, nil
		}
	}
	if until, ok := c.refused[caller]; ok {
		if time.Now().Before(until) {
			return nil, RefusedError(caller, false, replymux.ErrRefused)
		}
		delete(c.refused, caller)
	}
	x, err := replymux.New(ctx, c.nc, caller)
	if err != nil {
		if errors.Is(err, replymux.ErrRefused) {
			c.refused[caller] = time.Now().Add(refusedWait)
			return nil, RefusedError(caller, false, err)
		}
		if errors.Is(err, wire.ErrInvalidName) {
			return nil, &wire.Error{Kind: wire.KindNoRoute, Message: "caller: " + err.Error(), Err: err}
		}
		// Nothing was sent.
		return nil, &wire.Error{Kind: wire.KindBrokerUnavailable, Message: err.Error(), Err: err}
	}
	m := make(map[string]*replymux.Mux, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	m[caller] = x
	c.muxes.Store(&m)
	return x, nil
}

// Close closes the reply muxes, failing the calls waiting on them; from
// then on no call is sent (broker-unavailable). It does not close the
// NATS connection. Safe to call more than once.
func (c *Conn) Close() error {
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if m := c.muxes.Swap(nil); m != nil { // later calls find no mux, and c.closed
		for _, x := range *m {
			errs = append(errs, x.Close())
		}
	}
	return errors.Join(errs...)
}

// Connected returns nil once the connection is up, waiting for a reconnect
// for at most the grace period (within ctx). A request sent while
// reconnecting would sit in nats.go's buffer until its deadline: failing
// fast lets the caller retry elsewhere or give up with a clear answer.
// Nothing has been sent when it fails, so its errors are
// broker-unavailable, which is safe to retry.
func (c *Conn) Connected(ctx context.Context) error {
	if c.nc.IsConnected() {
		return nil
	}
	if c.nc.IsClosed() || c.grace <= 0 {
		return &wire.Error{Kind: wire.KindBrokerUnavailable, Message: "no connection to the broker"}
	}
	// The grace runs from the loss of the connection, not from each
	// attempt: a call's retries do not wait it again, and a call made
	// well into an outage fails at once.
	// downSince is written only by the connection's own handlers (a
	// time written here could outlive the reconnect it raced with); 0
	// while the connection is down is a loss its handler has yet to
	// tell: just now.
	now := time.Now()
	since := c.downSince.Load()
	if since == 0 {
		since = now.UnixNano()
	}
	left := c.grace - now.Sub(time.Unix(0, since))
	if left <= 0 {
		return &wire.Error{Kind: wire.KindBrokerUnavailable, Message: fmt.Sprintf("no connection to the broker for %v (reconnect grace %v)", now.Sub(time.Unix(0, since)).Round(time.Millisecond), c.grace)}
	}
	ch := c.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer c.nc.RemoveStatusListener(ch)
	t := time.NewTimer(left)
	defer t.Stop()
	// The status may have changed before the listener was registered.
	for !c.nc.IsConnected() {
		if c.nc.IsClosed() {
			return &wire.Error{Kind: wire.KindBrokerUnavailable, Message: "the connection to the broker is closed"}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return &wire.Error{Kind: wire.KindBrokerUnavailable, Message: "no connection to the broker before the deadline", Err: ctx.Err()}
		case <-t.C:
			return &wire.Error{Kind: wire.KindBrokerUnavailable, Message: fmt.Sprintf("no connection to the broker (waited %v)", c.grace)}
		}
	}
	return nil
}

// SendError is the mesh error of a call from caller to dest (its
// destination, as the caller named it) whose request on c failed with
// err, ctx being the request's context ([Conn.Track]'s): the forbidden
// the broker's refusal of the publish ended it with, a reply subscription
// refused, no responders naming dest, broker-unavailable for a request
// refused before it was sent, or what wire.FromError reads (a connection
// lost from here on is connection-lost: the request may have run).
func SendError(ctx context.Context, err error, caller, dest string) error {
	if cause := context.Cause(ctx); errors.Is(cause, wire.ErrForbidden) {
		return cause
	}
	e := wire.FromError(err)
	switch {
	case e.Kind == wire.KindNoResponders && errors.Is(err, nats.ErrNoResponders):
		e.Message = "no instance of " + dest + " is serving"
	case e.Kind == wire.KindForbidden && errors.Is(err, replymux.ErrNotSent) && errors.Is(err, replymux.ErrRefused):
		// It found the mux just before refuseMux failed it.
		e = RefusedError(caller, false, err)
	case e.Kind == wire.KindConnectionLost && errors.Is(err, replymux.ErrNotSent):
		// Refused before it was sent (the Conn closed under the call,
		// after it found its mux; or the connection closed before the
		// publish): nothing ran.
		msg := "no connection to the broker: " + err.Error()
		if errors.Is(err, replymux.ErrClosed) {
			msg = "the outbound pipeline is closed"
		}
		e = &wire.Error{Kind: wire.KindBrokerUnavailable, Message: msg, Err: err}
	}
	return e
}
