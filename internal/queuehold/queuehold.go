package queuehold

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/wire"
)

// ErrRefused is Join's error while the broker refuses the instance's
// queue subscriptions (Hold.Refusal says why).
var ErrRefused = errors.New("the broker refuses the queue subscriptions")

// Config is what a Hold needs. Conn, Service and Handler are required.
type Config struct {
	Conn *nats.Conn
	// Service and Subset name the queue groups (wire.ServiceSubjects).
	Service, Subset string
	// Handler serves every message delivered to the subscriptions.
	Handler nats.MsgHandler
	// Instance, when set, is the instance's ID (its discovery ID):
	// while the instance is in its queue groups it also subscribes its
	// instance subject (wire.InstanceSubject, in the service's queue
	// group), which callers address a
	// call to once it went unanswered elsewhere (docs/wire.md,
	// "Liveness"). "" subscribes none. A broker that refuses it (accounts
	// generated before instance subjects) costs only that: said once, at
	// Warn; the queue groups are kept.
	Instance string
	// Out, when set, reports whether the instance is held out of its
	// queue groups (a passive health cool-off): Join does nothing then.
	Out func() bool
	// OnServing is told each time the instance starts or stops serving.
	OnServing func(serving bool)
	// RetryAfter is how long a refused instance waits before Retry, and
	// how long a serving instance whose instance subject the broker
	// refused waits before it asks for it again (0: it asks again only
	// when it next joins its queue groups).
	RetryAfter time.Duration
	// Retry is called RetryAfter after a refusal, once the refusal is
	// cleared, to join again (or not: the agent's health may say no).
	Retry  func()
	Logger *slog.Logger
}

// Hold is an instance's hold on its queue groups. Its methods are safe for
// concurrent use.
type Hold struct {
	cfg Config

	leaveMu sync.Mutex // one Leave at a time
	mu      sync.Mutex
	subs    []*nats.Subscription
	// inst is the instance subject's subscription, held with subs (nil
	// when there is none, or the broker refused it).
	inst *nats.Subscription
	// instRefused: the broker's refusal of the instance subject was said
	// (once, until it is admitted). Each Join asks again: the refusal's
	// own message says to restart or reload the broker.
	instRefused bool
	// instRetry asks for a refused instance subject again (retryInstance)
	// while the instance keeps its queue groups: an agent that serves
	// calls Join no more, and a broker restarted or reloaded with accounts
	// that admit the subject says nothing of it.
	instRetry *time.Timer
	draining  []<-chan nats.SubStatus // subscriptions left but maybe not yet closed
	closed    bool                    // no more subscribing

	// refusal is set while the broker refuses the queue subscriptions;
	// the instance then neither serves nor is ready, and asks again after
	// RetryAfter (retryRefused), not before. Under mu.
	refusal       error
	refusalLogged bool        // said, at Error, since the last success
	retry         *time.Timer // retryRefused, armed by a refusal
	refusals      atomic.Int64
}

// New returns a Hold that holds no subscription yet.
func New(cfg Config) *Hold {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Hold{cfg: cfg}
}

// Serving reports whether the instance holds its queue subscriptions.
func (h *Hold) Serving() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// Refusal returns why the broker refuses the queue subscriptions, or nil.
func (h *Hold) Refusal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refusal
}

// Refusals is how many times the broker refused (for tests).
func (h *Hold) Refusals() int64 { return h.refusals.Load() }

// Join subscribes the service's queue groups, unless the instance holds
// them already, is held out (Config.Out) or the Hold is closed. A refused
// subscription leaves the queue groups again and returns ErrRefused,
// said once at Error; see the package doc.
func (h *Hold) Join() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) > 0 || (h.cfg.Out != nil && h.cfg.Out()) {
		return nil
	}
	if h.refusal != nil {
		return ErrRefused
	}
	nc := h.cfg.Conn
	subjects, queues := wire.ServiceSubjects(h.cfg.Service, h.cfg.Subset)
	for i, subj := range subjects {
		before := nc.LastError()
		sub, err := nc.QueueSubscribe(subj, queues[i], h.cfg.Handler)
		if err != nil {
			for _, s := range h.subs {
				s.Unsubscribe()
			}
			h.subs = nil
			return err
		}
		h.subs = append(h.subs, sub)
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			h.cfg.Logger.Warn("flushing subscriptions", "err", err)
			continue
		}
		// A violation is a pointer (nats.go wraps it), so comparing it
		// with the error before is safe, and tells a new one from an old
		// refusal of the same subscription.
		if last := nc.LastError(); h.refuses(last) == i && last != before {
			h.refuseLocked(i, last)
			return ErrRefused
		}
	}
	h.joinInstance()
	if h.refusalLogged {
		// Said whichever way it joined (a retry, or the health loop).
		h.cfg.Logger.Info("agent: the broker admits the queue subscriptions now: serving")
	}
	h.refusalLogged = false // a refusal after this one is news
	h.serving(true)
	return nil
}

// joinInstance subscribes the instance subject (h.mu held, the queue
// groups joined). A refusal is said once and leaves the instance in its
// queue groups: callers then cannot address it, and send to the queue
// group instead.
func (h *Hold) joinInstance() {
	id := h.cfg.Instance
	if h.inst != nil || !wire.ValidInstance(id) {
		return
	}
	nc := h.cfg.Conn
	before := nc.LastError()
	// In the service's queue group, though it is the only subscriber a
	// caller addresses: a holder of the service's key that subscribes
	// the same subject in that group takes a share of its calls, as in
	// the queue groups, never a copy (wire.InstanceSubject).
	sub, err := nc.QueueSubscribe(wire.InstanceSubject(h.cfg.Service, id), h.cfg.Service, h.cfg.Handler)
	if err != nil {
		h.cfg.Logger.Warn("agent: subscribing the instance subject", "err", err)
		return
	}
	h.inst = sub
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		return
	}
	if last := nc.LastError(); last != before && h.refusesInstance(last) {
		h.refuseInstanceLocked(last)
		return
	}
	if h.instRefused {
		h.cfg.Logger.Info("agent: the broker admits this instance's instance subject now: callers may send it a call another instance left unanswered")
	}
	h.instRefused = false // admitted: a later refusal is said again
}

// retryInstance asks again for the instance subject the broker refused,
// RetryAfter after the refusal, while the instance holds its queue
// groups (not during a Leave: leaveMu).
func (h *Hold) retryInstance() {
	h.leaveMu.Lock()
	defer h.leaveMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.subs) == 0 || h.inst != nil {
		return
	}
	h.joinInstance()
}

// Addressable reports whether the instance holds its instance subject
// (and so its queue groups): a caller may address a call to it.
func (h *Hold) Addressable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inst != nil && len(h.subs) > 0
}

// refusesInstance reports whether err is the broker's refusal of the
// instance subject's subscription.
func (h *Hold) refusesInstance(err error) bool {
	v, ok := natsconn.ParseViolation(err)
	return ok && v.Subscribe && v.Queue == h.cfg.Service && strings.HasPrefix(v.Subject, wire.InstancePrefix+"."+h.cfg.Service+".")
}

// refuseInstanceLocked drops the instance subject after the broker
// refused it, until the next Join (h.mu held).
func (h *Hold) refuseInstanceLocked(err error) {
	if h.inst != nil {
		h.inst.Unsubscribe()
		h.inst = nil
	}
	if !h.instRefused {
		h.instRefused = true
		h.cfg.Logger.Warn("agent: the broker refuses this instance's instance subject: callers cannot send a call here after another instance was silent, only to the queue group; "+
			"run natsmesh accounts generate again (then restart or reload the broker with it)", "err", err)
	}
	if h.closed || h.cfg.RetryAfter <= 0 {
		return
	}
	if h.instRetry == nil {
		h.instRetry = time.AfterFunc(h.cfg.RetryAfter, h.retryInstance)
	} else {
		h.instRetry.Reset(h.cfg.RetryAfter)
	}
}

func (h *Hold) serving(on bool) {
	if h.cfg.OnServing != nil {
		h.cfg.OnServing(on)
	}
}

// refuses returns the index (in wire.ServiceSubjects) of the instance's
// queue subscription that err says the broker refused, or -1.
func (h *Hold) refuses(err error) int {
	v, ok := natsconn.ParseViolation(err)
	if !ok || !v.Subscribe {
		return -1
	}
	subjects, queues := wire.ServiceSubjects(h.cfg.Service, h.cfg.Subset)
	for i := range subjects {
		if v.Subject == subjects[i] && v.Queue == queues[i] {
			return i
		}
	}
	return -1
}

// refuseLocked (with h.mu held) takes the instance out of its queue
// groups after the broker refused its subscription i (in
// wire.ServiceSubjects' order), err being the broker's refusal, and holds
// it out until retryRefused. It says why once, at Error.
func (h *Hold) refuseLocked(i int, err error) {
	h.refusals.Add(1)
	for _, s := range h.subs {
		// Drained: the other subscription may have had a call delivered.
		ch := s.StatusChanged(nats.SubscriptionClosed)
		if s.Drain() != nil {
			s.Unsubscribe()
			continue
		}
		h.draining = append(h.draining, ch)
	}
	h.subs = nil
	if h.inst != nil {
		h.inst.Unsubscribe()
		h.inst = nil
	}
	h.refusal = h.refusalError(i)
	if !h.refusalLogged {
		h.refusalLogged = true
		h.cfg.Logger.Error("agent: "+h.refusal.Error(), "err", err)
	}
	if h.retry == nil {
		h.retry = time.AfterFunc(h.cfg.RetryAfter, h.retryRefused)
	} else {
		h.retry.Reset(h.cfg.RetryAfter)
	}
	h.serving(false)
}

// refusalError says why the broker refused subscription i, and what to do.
func (h *Hold) refusalError(i int) error {
	svc, subset := h.cfg.Service, h.cfg.Subset
	if i > 0 {
		return fmt.Errorf("the broker refuses %s serving subset %s: the mesh file declares no subset %s of %s; "+
			"declare it under services.%s.subsets and run natsmesh accounts generate again (then restart or reload the broker with it)",
			svc, subset, subset, svc, svc)
	}
	subjects, queues := wire.ServiceSubjects(svc, "")
	return fmt.Errorf("the broker refuses %s serving: its NATS user may not subscribe %s in queue group %s; "+
		"connect with %s's own credentials (natsmesh accounts generate), from a mesh file that declares %s",
		svc, subjects[0], queues[0], svc, svc)
}

// retryRefused clears the refusal, RetryAfter after it (the broker's
// configuration may have been reloaded since), and calls Config.Retry.
func (h *Hold) retryRefused() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.refusal = nil
	h.mu.Unlock()
	if h.cfg.Retry != nil {
		h.cfg.Retry()
	}
}

// WatchRefusals chains a handler in front of the connection's async error
// handler for the refusals Join cannot tell at once: a queue subscription
// that nats.go sends again after a reconnect, one a reload of the
// broker's configuration withdraws, one whose -ERR another error followed
// before the flush returned. Each takes the instance out of its queue
// groups as Join does. The refusals of the instance's own queue
// subscriptions are the Hold's to report (said once): they are not passed
// on.
func (h *Hold) WatchRefusals() {
	nc := h.cfg.Conn
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if i := h.refuses(err); i >= 0 {
			go h.refuseLater(i, err) // not on nats.go's callback goroutine
			return
		}
		if h.refusesInstance(err) {
			go func() {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.refuseInstanceLocked(err)
			}()
			return
		}
		if prev != nil {
			prev(c, sub, err)
		}
	})
}

// refuseLater is WatchRefusals' refusal: the instance leaves its queue
// groups, unless it is out of them already (Join saw the refusal itself,
// or the instance left).
func (h *Hold) refuseLater(i int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.refusal != nil || len(h.subs) == 0 {
		return
	}
	h.refuseLocked(i, err)
}

// Leave leaves the queue groups by draining: messages already delivered
// to this instance are still served. It returns once the broker has
// processed the unsubscribe (a flush), so when Serving reports false no
// new call is routed here. The drains finish in the background; Wait
// waits for them.
func (h *Hold) Leave() {
	h.leaveMu.Lock()
	defer h.leaveMu.Unlock()
	h.mu.Lock()
	subs := h.subs
	if h.inst != nil {
		subs = append(slices.Clip(subs), h.inst)
	}
	h.inst = nil
	h.mu.Unlock()
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
	if err := h.cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		h.cfg.Logger.Warn("flushing the unsubscribe", "err", err)
	}
	h.mu.Lock()
	h.subs = nil
	h.draining = append(h.draining, draining...)
	h.mu.Unlock()
	h.serving(false)
}

// Close ends joining: Join does nothing from now on, and no refusal is
// retried. It does not leave; Leave, then Wait, do.
func (h *Hold) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.retry != nil {
		h.retry.Stop()
	}
	if h.instRetry != nil {
		h.instRetry.Stop()
	}
}

// Wait waits for every drain Leave (or a refusal) began, each for at most
// what is left of timeout.
func (h *Hold) Wait(timeout time.Duration) {
	h.mu.Lock()
	draining := h.draining
	h.draining = nil
	h.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for _, ch := range draining {
		select {
		case <-ch:
		case <-t.C:
			h.cfg.Logger.Warn("subscription drain did not finish", "after", timeout)
		}
	}
}
