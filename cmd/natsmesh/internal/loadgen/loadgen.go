package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Target makes one call. A non-nil error counts the call as failed; its
// latency is not recorded.
type Target func(ctx context.Context) error

// Result is what one run measured.
type Result struct {
	// Calls is the number of calls that succeeded; Errors those that failed.
	Calls, Errors int64
	// Missed counts open-loop calls that were due but never started, because
	// the run's drain time ran out first. Each counts as failed.
	Missed int64
	// Elapsed is the time from the first call being due to the last one
	// ending.
	Elapsed time.Duration
	// Latency holds the successful calls' latencies.
	Latency *Recorder
	// FirstError is the first error a call returned, for the report.
	FirstError error
}

// Throughput returns the successful calls per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Elapsed.Seconds()
}

// ClosedConfig configures a closed-loop run.
type ClosedConfig struct {
	// Workers is the number of concurrent callers. Zero means 1.
	Workers int
	// Duration bounds the run. Required.
	Duration time.Duration
	// MaxCalls, when positive, ends the run after that many calls.
	MaxCalls int64
	// MaxSamples bounds each worker's kept latencies (see Recorder).
	MaxSamples int
}

// ErrConfig is wrapped by the errors about an invalid configuration.
var ErrConfig = errors.New("loadgen: invalid configuration")

// Closed runs a closed loop: Workers callers, each calling target again as
// soon as the previous call returns, until Duration has passed, MaxCalls
// calls have started, or ctx ends. Calls in flight at the end are waited for
// (target receives a context that ends with the run, plus one Duration of
// grace, so a stuck target cannot hold the run forever).
func Closed(ctx context.Context, cfg ClosedConfig, target Target) (*Result, error) {
	if cfg.Duration <= 0 {
		return nil, fmt.Errorf("%w: duration must be positive", ErrConfig)
	}
	workers := max(cfg.Workers, 1)
	callCtx, cancel := context.WithTimeout(ctx, 2*cfg.Duration)
	defer cancel()
	start := time.Now()
	end := start.Add(cfg.Duration)
	var (
		mu      sync.Mutex
		started int64
		res     = &Result{Latency: &Recorder{MaxSamples: cfg.MaxSamples}}
		wg      sync.WaitGroup
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if cfg.MaxCalls > 0 && started >= cfg.MaxCalls {
			return false
		}
		started++
		return true
	}
	for range workers {
		wg.Go(func() {
			w := tally{rec: &Recorder{MaxSamples: cfg.MaxSamples}}
			now := time.Now()
			for now.Before(end) && ctx.Err() == nil && take() {
				err := target(callCtx)
				done := time.Now()
				w.call(err, done.Sub(now))
				now = done
			}
			w.last = now
			mu.Lock()
			res.add(&w, start)
			mu.Unlock()
		})
	}
	wg.Wait()
	return res, nil
}

// tally is one worker's share of a run, added to the Result when it ends.
type tally struct {
	rec                 *Recorder
	calls, errs, missed int64
	firstErr            error
	// last is when the worker's last call ended.
	last time.Time
}

// call counts one call that returned err after latency d.
func (w *tally) call(err error, d time.Duration) {
	if err != nil {
		w.errs++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	w.calls++
	w.rec.Record(d)
}

// add merges a worker's tally into r; Elapsed runs from start to the latest
// call end of any worker.
func (r *Result) add(w *tally, start time.Time) {
	r.Calls += w.calls
	r.Errors += w.errs + w.missed
	r.Missed += w.missed
	if r.FirstError == nil {
		r.FirstError = w.firstErr
	}
	r.Latency.Merge(w.rec)
	r.Elapsed = max(r.Elapsed, w.last.Sub(start))
}

// OpenConfig configures an open-loop run.
type OpenConfig struct {
	// Rate is the calls due per second. Required.
	Rate float64
	// Duration is how long calls are scheduled for: Rate*Duration calls in
	// all. Required.
	Duration time.Duration
	// Drain bounds how long, after the last call is due, the run waits for
	// the calls still queued or in flight; calls not started by then count
	// as Missed. Zero means one Duration.
	Drain time.Duration
	// Workers bounds the calls in flight at once, like a client's connection
	// pool. Zero means 64. When all are busy, due calls queue, and the wait
	// counts in their latency.
	Workers int
	// MaxSamples bounds each worker's kept latencies (see Recorder).
	MaxSamples int
}

// Open runs an open loop: call i is due at start + i/Rate, whatever happened
// to the calls before it, and its latency runs from that due time to its
// end. A worker that is free early waits for the due time; one that is late
// sends at once, and the delay is part of the latency (it is what a user
// arriving at that time would have waited).
func Open(ctx context.Context, cfg OpenConfig, target Target) (*Result, error) {
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("%w: rate and duration must be positive", ErrConfig)
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 64
	}
	drain := cfg.Drain
	if drain <= 0 {
		drain = cfg.Duration
	}
	total := int64(cfg.Rate * cfg.Duration.Seconds())
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	start := time.Now()
	stop := start.Add(cfg.Duration + drain)
	runCtx, cancel := context.WithDeadline(ctx, stop)
	defer cancel()

	var (
		mu   sync.Mutex
		next int64 // index of the next call to take
		res  = &Result{Latency: &Recorder{MaxSamples: cfg.MaxSamples}}
		wg   sync.WaitGroup
	)
	// Workers take the next index themselves: the schedule is arithmetic, so
	// no dispatcher goroutine (whose own delays could skew it) is needed.
	take := func() (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= total {
			return time.Time{}, false
		}
		due := start.Add(time.Duration(next) * interval)
		next++
		return due, true
	}
	for range workers {
		wg.Go(func() {
			w := tally{rec: &Recorder{MaxSamples: cfg.MaxSamples}}
			timer := time.NewTimer(time.Hour)
			timer.Stop()
			for {
				due, ok := take()
				if !ok {
					break
				}
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-runCtx.Done():
					}
				}
				if runCtx.Err() != nil {
					w.missed++
					continue
				}
				err := target(runCtx)
				w.last = time.Now()
				w.call(err, w.last.Sub(due))
			}
			mu.Lock()
			res.add(&w, start)
			mu.Unlock()
		})
	}
	wg.Wait()
	return res, nil
}
