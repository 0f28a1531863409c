package stallwatch

import (
	"context"
	"fmt"
	"log/slog"
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

	// since is when the first call the service has not answered since
	// its last answer came (Unix ns; 0: none): an atomic, as every call
	// reads it and most write it.
	since atomic.Int64

	// suspect: the health checks probe the service itself until it
	// answers; frozen: the last probe went unanswered.
	suspect, frozen atomic.Bool
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
		if err == nil {
			// The service gave its answer, whatever its status; an error
			// is a call that failed, timed out or was cancelled.
			w.answered()
		}
		return reply, err
	})
}

func (w *Watch) start() {
	now := time.Now().UnixNano()
	w.since.CompareAndSwap(0, now) // the first call since the last answer
	since := w.since.Load()
	stalled := since != 0 && time.Duration(now-since) > After
	if stalled && w.suspect.CompareAndSwap(false, true) {
		w.log().Warn("the service has answered none of its calls for a while: asking it whether it is alive", "after", After)
		if w.OnStall != nil {
			w.OnStall()
		}
	}
}

// answered notes a sign of the service's life: an answer, or a probe's.
func (w *Watch) answered() {
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
