package stallwatch

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// A service that answered none of its calls for After becomes suspect
// (OnStall once); while its probe goes unanswered the check fails and
// every call is refused as nothing ran, without reaching the service;
// once the probe is answered, calls reach it again.
func TestWatchFrozenThenAlive(t *testing.T) {
	var stalls, served atomic.Int32
	var alive atomic.Bool
	w := &Watch{
		Alive: func(context.Context) error {
			if alive.Load() {
				return nil
			}
			return errors.New("no answer")
		},
		OnStall: func() { stalls.Add(1) },
	}
	release := make(chan struct{})
	h := w.Wrap(pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		served.Add(1)
		if c.Op == "hang" {
			<-release
			return nil, context.DeadlineExceeded
		}
		return &pipeline.Reply{}, nil
	}))
	check := w.Check(func(context.Context) error { return nil })
	ctx := context.Background()

	// An unanswered call, then, past After, another: a stall.
	go h.ServeCall(ctx, &pipeline.Call{Op: "hang"})
	defer close(release)
	waitFor(t, "the first call", func() bool { return served.Load() > 0 })
	if err := check(ctx); err != nil {
		t.Fatalf("check before any stall: %v", err)
	}
	w.since.Store(time.Now().Add(-2 * After).UnixNano()) // as if the hung call came 2 s ago
	go h.ServeCall(ctx, &pipeline.Call{Op: "hang"})
	waitFor(t, "the stall", func() bool { return stalls.Load() > 0 })
	if err := check(ctx); err == nil {
		t.Fatal("check passed while the suspect service answers no probe")
	}
	before := served.Load()
	_, err := h.ServeCall(ctx, &pipeline.Call{Op: "ok"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Kind != wire.KindUpstreamRefused || served.Load() != before {
		t.Fatalf("call to a frozen service = %v (served %d -> %d), want upstream-refused without reaching it", err, before, served.Load())
	}
	if stalls.Load() != 1 {
		t.Errorf("OnStall called %d times, want once", stalls.Load())
	}

	alive.Store(true)
	if err := check(ctx); err != nil {
		t.Fatalf("check once the service answers its probe: %v", err)
	}
	if _, err := h.ServeCall(ctx, &pipeline.Call{Op: "ok"}); err != nil {
		t.Fatalf("call once the service answers again: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10 s", what)
		}
	}
}

// TestWatchStallWithoutLaterCalls: the calls to a frozen service fill its
// agent's concurrency limit, and the later ones are refused before they
// reach the watch. The watch still sees the stall After the first
// unanswered call, with no call after it; before, only a later call's
// start looked, and the stall was seen only once the stuck calls' deadlines
// freed places (seconds). A service that answers in time is never
// suspect, and Stop stops the timer.
func TestWatchStallWithoutLaterCalls(t *testing.T) {
	var stalls atomic.Int32
	w := &Watch{
		Alive:   func(context.Context) error { return errors.New("no answer") },
		OnStall: func() { stalls.Add(1) },
	}
	defer w.Stop()
	release := make(chan struct{})
	h := w.Wrap(pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		if c.Op == "hang" {
			<-release
			return nil, context.DeadlineExceeded
		}
		return &pipeline.Reply{}, nil
	}))
	ctx := context.Background()

	// Answered calls, a little over After in all: never suspect.
	for end := time.Now().Add(After + 200*time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if _, err := h.ServeCall(ctx, &pipeline.Call{Op: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(After / 2)
	if n := stalls.Load(); n != 0 {
		t.Fatalf("OnStall called %d times for a service that answers every call", n)
	}

	// One call that hangs, and none after it.
	started := time.Now()
	go h.ServeCall(ctx, &pipeline.Call{Op: "hang"})
	defer close(release)
	waitFor(t, "stall seen without a later call", func() bool { return stalls.Load() > 0 })
	if d := time.Since(started); d < After {
		t.Errorf("stall seen %v after the call: want After (%v) or more", d, After)
	}
	if n := stalls.Load(); n != 1 {
		t.Errorf("OnStall called %d times, want once", n)
	}
}
