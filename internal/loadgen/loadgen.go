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
		mu       sync.Mutex
		started  int64
		res      = &Result{Latency: &Recorder{MaxSamples: cfg.MaxSamples}}
		wg       sync.WaitGroup
		lastDone time.Time
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
			rec := &Recorder{MaxSamples: cfg.MaxSamples}
			var calls, errs int64
			var firstErr error
			now := time.Now()
			for now.Before(end) && ctx.Err() == nil && take() {
				err := target(callCtx)
				done := time.Now()
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					calls++
					rec.Record(done.Sub(now))
				}
				now = done
			}
			mu.Lock()
			res.Calls += calls
			res.Errors += errs
			if res.FirstError == nil {
				res.FirstError = firstErr
			}
			res.Latency.Merge(rec)
			if now.After(lastDone) {
				lastDone = now
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = lastDone.Sub(start)
	return res, nil
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
		mu       sync.Mutex
		next     int64 // index of the next call to take
		res      = &Result{Latency: &Recorder{MaxSamples: cfg.MaxSamples}}
		wg       sync.WaitGroup
		lastDone = start
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
			rec := &Recorder{MaxSamples: cfg.MaxSamples}
			var calls, errs, missed int64
			var firstErr error
			var last time.Time
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
					missed++
					continue
				}
				err := target(runCtx)
				last = time.Now()
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				calls++
				rec.Record(last.Sub(due))
			}
			mu.Lock()
			res.Calls += calls
			res.Errors += errs + missed
			res.Missed += missed
			if res.FirstError == nil {
				res.FirstError = firstErr
			}
			res.Latency.Merge(rec)
			if last.After(lastDone) {
				lastDone = last
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = lastDone.Sub(start)
	return res, nil
}
