package stallwatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// After is how long a local service may answer none of the calls waiting
// on it before its watch asks whether it is alive at all.
const After = time.Second

// Watch watches the calls to one local service (see the package doc). Set
// its fields before the first call; the zero value of the rest is ready.
type Watch struct {
	// Alive asks the service to answer anything within ctx; nil is life.
	// Required.
	Alive func(ctx context.Context) error
	// OnStall, when set, is called once each time the service becomes
	// suspect: its owner runs the health check now.
	OnStall func()
	// Log, when set, says when the service becomes suspect, frozen, and
	// alive again.
	Log *slog.Logger

	// since is when the service was last seen alive with a call still
	// waiting on it: the first call since its last answer, or its last
	// answer (a call's or a probe's) while calls were still waiting
	// (Unix ns; 0: none waits): an atomic, as every call reads it and
	// most write it. inflight counts the calls waiting on it.
	since    atomic.Int64
	inflight atomic.Int64

	// suspect: the health checks probe the service itself until it
	// answers; frozen: the last probe went unanswered.
	suspect, frozen atomic.Bool

	// The timer that looks again After the first unanswered call came:
	// a frozen service's calls fill its agent's concurrency limit, and
	// the calls after them are refused before they reach the watch, so
	// no later call would see the stall. armed while it waits; stopped
	// by Stop. One timer a watch, armed at most once an After.
	tmu     sync.Mutex
	timer   *time.Timer
	armed   atomic.Bool
	stopped atomic.Bool
}

// Wrap is h with the watch around every call to the local service: a call
// while the service is frozen is refused, as nothing ran.
func (w *Watch) Wrap(h pipeline.Handler) pipeline.Handler {
	return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		if w.frozen.Load() {
			return nil, &wire.Error{Kind: wire.KindUpstreamRefused,
				Message: "not sent: the service answered none of its calls and no probe (it is stopped or hung)"}
		}
		w.start()
		reply, err := h.ServeCall(ctx, c)
		w.inflight.Add(-1)
		if err == nil {
			// The service gave its answer, whatever its status; an error
			// is a call that failed, timed out or was cancelled.
			w.answered()
		}
		return reply, err
	})
}

func (w *Watch) start() {
	w.inflight.Add(1)
	now := time.Now().UnixNano()
	// The first call since the last answer (read first: most calls find
	// since set, and a compare-and-swap would take the line anyway).
	if w.since.Load() == 0 && w.since.CompareAndSwap(0, now) {
		w.arm(After)
	}
	w.look(now)
}

// arm starts the timer unless it waits already.
func (w *Watch) arm(d time.Duration) {
	if w.armed.Load() || !w.armed.CompareAndSwap(false, true) {
		return
	}
	w.tmu.Lock()
	defer w.tmu.Unlock()
	switch {
	case w.stopped.Load():
	case w.timer == nil:
		w.timer = time.AfterFunc(d, w.fire)
	default:
		w.timer.Reset(d)
	}
}

// fire is the timer's: the stall if the service was last seen alive
// After ago or more with calls waiting, else a look again when it will
// have been.
func (w *Watch) fire() {
	now := time.Now().UnixNano()
	since := w.since.Load()
	if since != 0 {
		if left := After - time.Duration(now-since); left >= 0 {
			w.tmu.Lock()
			if !w.stopped.Load() {
				w.timer.Reset(left + time.Millisecond)
			}
			w.tmu.Unlock()
			return
		}
		w.look(now)
	}
	w.armed.Store(false)
	// A call that came, or an answer that restarted the clock, while the
	// timer was still armed did not arm it: a since other than the one
	// looked at has its own wait.
	if s := w.since.Load(); s != 0 && s != since {
		w.arm(After)
	}
}

// Stop stops the timer; OnStall is not called once it has returned, and
// the watch is not used after it.
func (w *Watch) Stop() {
	w.stopped.Store(true)
	w.tmu.Lock()
	defer w.tmu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// look makes the service suspect (once) if it was last seen alive, with
// calls waiting, over After before now.
func (w *Watch) look(now int64) {
	since := w.since.Load()
	stalled := since != 0 && time.Duration(now-since) > After && !w.stopped.Load()
	if stalled && w.suspect.CompareAndSwap(false, true) {
		w.log().Warn("the service has answered none of its calls for a while: asking it whether it is alive", "after", After)
		if w.OnStall != nil {
			w.OnStall()
		}
	}
}

// answered notes a sign of the service's life: an answer, or a probe's.
// With calls still waiting on the service, the clock starts again from
// now: a service that answered its probe and then froze with its calls
// holding every place is seen After later, though no call comes.
func (w *Watch) answered() {
	if w.inflight.Load() > 0 {
		// Stored once in a sixteenth of After at most: a busy service
		// answers many calls in that time, and the stall is still seen
		// within After and a sixteenth.
		if now := time.Now().UnixNano(); now-w.since.Load() > int64(After/16) {
			w.since.Store(now)
			w.arm(After)
		}
		return
	}
	if w.since.Load() != 0 {
		w.since.Store(0)
	}
}

// Check is base, the health check, with the Alive probe while the service
// is suspect: a service that answers it is no longer suspect, one that
// does not is frozen, and fails the check, until it answers.
func (w *Watch) Check(base func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := base(ctx); err != nil {
			return err
		}
		if !w.suspect.Load() {
			return nil
		}
		if err := w.Alive(ctx); err != nil {
			if !w.frozen.Swap(true) {
				w.log().Warn("the service answers nothing: withdrawn until it does", "err", err)
			}
			return fmt.Errorf("the service answers nothing (stopped or hung): %w", err)
		}
		if w.frozen.Swap(false) {
			w.log().Info("the service answers again")
		}
		w.suspect.Store(false)
		w.answered()
		return nil
	}
}

func (w *Watch) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}
