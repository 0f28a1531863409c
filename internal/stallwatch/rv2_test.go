package stallwatch

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
)

// TestRv2FireLosesNewCallsTimer: fire reads since (an old unanswered
// call: left < 0), and before it clears armed the service answers and a
// new call comes. The new call's start found armed true and did not arm;
// fire then clears armed and, because the since it read was not 0, does
// not look again: the new call has no timer. Expected: whenever since != 0
// after fire returns, a timer is armed (or the stall was seen).
func TestRv2FireLosesNewCallsTimer(t *testing.T) {
	w := &Watch{Alive: func(context.Context) error { return nil }}
	w.suspect.Store(true) // look does nothing: only the timer logic runs
	w.tmu.Lock()
	w.timer = time.AfterFunc(time.Hour, func() {})
	w.tmu.Unlock()
	defer w.timer.Stop()
	lost := 0
	const n = 200000
	for i := 0; i < n && lost == 0; i++ {
		w.since.Store(time.Now().Add(-2 * After).UnixNano())
		w.armed.Store(true)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.Gosched()
			w.answered()
			w.start() // a new call: since set, arm finds armed true
		}()
		w.fire()
		wg.Wait()
		if w.since.Load() != 0 && !w.armed.Load() {
			lost++
			t.Errorf("iteration %d: a call is unanswered (since set) and no timer is armed: its stall is seen only by a later call", i)
		}
	}
}

// TestRv2StallAfterAnsweredProbeMissed: the service's calls fill its
// agent's limit and hang; the stall is seen, the probe is answered (slow,
// not frozen), and Check clears since. Then the service freezes with the
// same calls in flight: no later call reaches the watch (the limit is
// full), since stays 0, and no timer is armed, so the new freeze is never
// seen — decision 175's case again. Expected: OnStall a second time about
// After after the probe was answered, with the calls still unanswered.
func TestRv2StallAfterAnsweredProbeMissed(t *testing.T) {
	var stalls atomic.Int32
	var alive atomic.Bool
	alive.Store(true)
	w := &Watch{
		Alive: func(context.Context) error {
			if alive.Load() {
				return nil
			}
			return errors.New("no answer")
		},
		OnStall: func() { stalls.Add(1) },
	}
	defer w.Stop()
	release := make(chan struct{})
	h := w.Wrap(pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		<-release
		return nil, context.DeadlineExceeded
	}))
	ctx := context.Background()
	check := w.Check(func(context.Context) error { return nil })
	for i := 0; i < 4; i++ { // the limit: 4 calls in flight, no more admitted
		go h.ServeCall(ctx, &pipeline.Call{})
	}
	defer close(release)
	waitFor(t, "first stall", func() bool { return stalls.Load() == 1 })
	if err := check(ctx); err != nil { // slow, not frozen: the probe answers
		t.Fatal(err)
	}
	alive.Store(false) // now it freezes, the 4 calls still unanswered
	time.Sleep(After + After/2)
	if n := stalls.Load(); n != 2 {
		t.Errorf("OnStall called %d times; want 2: the freeze after an answered probe, with the limit full of unanswered calls, is never seen", n)
	}
}

// TestRv2OnStallAfterStop: Stop does not wait for a fire that is running;
// that fire's look calls OnStall after Stop returned. Expected: no OnStall
// once Stop has returned ("the watch is not used after it").
func TestRv2OnStallAfterStop(t *testing.T) {
	var stopped atomic.Bool
	var after atomic.Int32
	stopping := make(chan struct{})
	w := &Watch{Alive: func(context.Context) error { return nil }}
	w.OnStall = func() {
		if stopped.Load() {
			after.Add(1)
		}
	}
	w.since.Store(time.Now().Add(-2 * After).UnixNano())
	w.armed.Store(true)
	w.timer = time.AfterFunc(time.Hour, func() {})
	// A fire that began (read since) just before Stop: emulate by
	// stopping from a goroutine racing with fire.
	go func() { <-stopping; w.Stop(); stopped.Store(true) }()
	close(stopping)
	for !stopped.Load() {
		runtime.Gosched()
	}
	w.fire() // the timer's goroutine, already past its start when Stop ran
	if after.Load() != 0 {
		t.Errorf("OnStall called %d times after Stop returned", after.Load())
	}
}
