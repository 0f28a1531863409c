package adaptivelimit

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("adaptivelimit: invalid configuration")

// Config configures a [Limiter]. Zero values take the defaults noted on
// each field.
type Config struct {
	// Initial is the limit before the first window, and the least the
	// usage cap lowers it to. Default 4.
	Initial int
	// Min and Max bound the limit. Defaults 1 and 1024.
	Min, Max int
	// Tolerance is how many times its baseline a window's mean latency
	// may be before the limit shrinks. Default 1.5; at least 1.1.
	Tolerance float64
	// Window is the shortest window of samples; a window also lasts at
	// least twice the baseline latency, and holds MinSamples. Default
	// 100ms.
	Window time.Duration
	// MinSamples is the fewest samples a window judges by. Default 10.
	MinSamples int
}

// Defaults of Config.
const (
	DefaultInitial    = 4
	DefaultMax        = 1024
	DefaultTolerance  = 1.5
	DefaultWindow     = 100 * time.Millisecond
	DefaultMinSamples = 10
)

// Limiter is an adaptive concurrency limit (see the package doc). It is
// safe for concurrent use.
type Limiter struct {
	// The hot path's state: the limit as it is admitted against, the
	// calls in flight, and the current window's most in flight and
	// refusals.
	limit    atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
	refused  atomic.Int64
	// heldFrom is when the window's first refusal came, as the time
	// since epoch; 0 before it.
	heldFrom atomic.Int64
	epoch    time.Time
	clock    func() time.Time // time.Now; the tests' virtual time

	initial, min, max float64
	tol               float64
	window            time.Duration
	minSamples        int

	mu sync.Mutex
	// The current window: its start (calls admitted earlier are not its
	// samples), and its samples' count and total latency.
	start time.Time
	n     int
	sum   time.Duration
	// exact is the limit unrounded; baseline the service's latency when
	// not held back (0 until the first window ends).
	exact     float64
	baseline  time.Duration
	slowStart bool
	// After a shrink, the window it judged by: its mean and peak.
	shrunk               bool
	shrunkMean, shrunkPk float64
}

// New returns a Limiter, or an error wrapping ErrConfig.
func New(cfg Config) (*Limiter, error) {
	if cfg.Initial == 0 {
		cfg.Initial = DefaultInitial
	}
	if cfg.Min == 0 {
		cfg.Min = 1
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = DefaultMinSamples
	}
	switch {
	case cfg.Min < 1 || cfg.Max < cfg.Min || cfg.Initial < cfg.Min || cfg.Initial > cfg.Max:
		return nil, fmt.Errorf("%w: limits min %d, initial %d, max %d: want 1 <= min <= initial <= max", ErrConfig, cfg.Min, cfg.Initial, cfg.Max)
	case cfg.Tolerance < 1.1:
		return nil, fmt.Errorf("%w: tolerance %v: want at least 1.1", ErrConfig, cfg.Tolerance)
	case cfg.Window < 0 || cfg.MinSamples < 1:
		return nil, fmt.Errorf("%w: window %v of %d samples", ErrConfig, cfg.Window, cfg.MinSamples)
	}
	l := &Limiter{initial: float64(cfg.Initial), min: float64(cfg.Min), max: float64(cfg.Max),
		tol: cfg.Tolerance, window: cfg.Window, minSamples: cfg.MinSamples,
		exact: float64(cfg.Initial), slowStart: true, clock: time.Now}
	l.epoch = l.clock()
	l.start = l.epoch
	l.limit.Store(int64(cfg.Initial))
	return l, nil
}

// TryAcquire admits a call if fewer than the limit are in flight, and
// never waits. An admitted call must be released once ([Limiter.Release]).
func (l *Limiter) TryAcquire() bool {
	for {
		n := l.inflight.Load()
		if n >= l.limit.Load() {
			if l.refused.Add(1) == 1 {
				l.heldFrom.Store(int64(max(1, l.clock().Sub(l.epoch))))
			}
			return false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			for p := l.peak.Load(); n+1 > p && !l.peak.CompareAndSwap(p, n+1); p = l.peak.Load() {
			}
			return true
		}
	}
}

// Release ends an admitted call that started at start. With sample, its
// latency (from start to now) is a sample of the service's; without, it
// only frees its place (a stream's head, a call that failed before or
// without reaching the service).
func (l *Limiter) Release(start time.Time, sample bool) {
	if !sample {
		l.inflight.Add(-1)
		return
	}
	l.release(start, l.clock())
}

func (l *Limiter) release(start, now time.Time) {
	l.inflight.Add(-1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if hf := l.heldFrom.Load(); hf != 0 && l.epoch.Add(time.Duration(hf)).After(l.start) {
		// The limit began to hold calls back in this window: the calls
		// admitted before did not meet the service as busy as the
		// window's later ones do, and judged with them, would read it as
		// less busy than it is (and, in slow start, double the limit
		// into a queue). The window starts again from the first refusal.
		l.start, l.n, l.sum = l.epoch.Add(time.Duration(hf)), 0, 0
	}
	if start.Before(l.start) {
		return // admitted under an earlier window's limit
	}
	l.n++
	l.sum += now.Sub(start)
	if l.n >= l.minSamples && now.Sub(l.start) >= max(l.window, 2*l.baseline) {
		l.update(now)
	}
}

// update ends the window at now and sets the limit by its samples.
func (l *Limiter) update(now time.Time) {
	mean := l.sum / time.Duration(l.n)
	peak := float64(l.peak.Swap(l.inflight.Load()))
	// heldFrom first: a refusal between the two is then this window's,
	// and the next window's first refusal stores its time again.
	l.heldFrom.Store(0)
	held := l.refused.Swap(0) > 0 || peak >= float64(l.limit.Load())
	next := l.exact
	shrunk := l.shrunk
	l.shrunk = false
	switch {
	case l.baseline == 0:
		l.baseline = mean
	case shrunk && peak <= 0.75*l.shrunkPk && float64(mean) >= 0.9*l.shrunkMean:
		// Fewer calls in flight, no shorter latency: it is not queueing
		// here that makes the service slow.
		l.baseline = mean
	case float64(mean) > l.tol*float64(l.baseline):
		next = max(next*float64(l.baseline)/float64(mean), next/2)
		l.slowStart = false
		l.shrunk, l.shrunkMean, l.shrunkPk = true, float64(mean), peak
	case held && float64(mean) > (1+l.tol)/2*float64(l.baseline):
		// Calls queue a little: hold.
	case held && l.slowStart:
		next *= 2
	case held:
		next += max(1, math.Sqrt(next)/2)
	default:
		l.baseline += (mean - l.baseline) / 4
		l.slowStart = true
	}
	next = min(next, max(l.initial, 4*peak))
	l.exact = min(max(next, l.min), l.max)
	l.limit.Store(int64(l.exact))
	l.start, l.n, l.sum = now, 0, 0
}

// Limit is the limit now.
func (l *Limiter) Limit() int { return int(l.limit.Load()) }
