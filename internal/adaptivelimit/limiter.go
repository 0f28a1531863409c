package adaptivelimit

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("adaptivelimit: invalid configuration")

// Config configures a [Limiter]. Zero values take the defaults noted on
// each field.
type Config struct {
	// Min and Max bound the limit. Defaults 1 and 1024. The limit is Max
	// until the first window ends.
	Min, Max int
	// Burst is the least the limit is while the service shows no
	// queueing: then the limit is four times the most calls in flight in
	// the last window, and at least Burst. Default 64 (at most Max).
	Burst int
	// MaxWait is how long a call over the limit may wait for a place
	// ([Limiter.Wait]) while the service shows no queueing. Default
	// 150ms: shorter than a caller's least wait for a sign of life
	// (wire.MinTakeWithin), since a call waiting here has given none
	// and would otherwise be taken for lost and sent again.
	MaxWait time.Duration
	// Tolerance is how many times its baseline a window's mean latency
	// may be before the calls count as queueing. Default 1.5; at least
	// 1.1.
	Tolerance float64
	// Slack is the least a window's mean latency must exceed its baseline
	// by to count as queueing while the limit is open, so that a fast
	// service's jitter (a garbage collection, a process starved of CPU
	// for a moment) is not taken for a queue; limiting, a tenth of it.
	// Default 50ms.
	Slack time.Duration
	// Window is the shortest window of samples; a window also lasts at
	// least twice the baseline latency, and holds MinSamples. Default
	// 100ms.
	Window time.Duration
	// MinSamples is the fewest samples a window judges by. Default 10.
	MinSamples int
}

// Defaults of Config.
const (
	DefaultMax        = 1024
	DefaultBurst      = 64
	DefaultMaxWait    = 150 * time.Millisecond
	DefaultTolerance  = 1.5
	DefaultSlack      = 50 * time.Millisecond
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
	// heldFrom is when the window's first refusal came (Unix ns); 0
	// before it.
	heldFrom atomic.Int64
	clock    func() time.Time // time.Now; the tests' virtual time
	// closed is set while the limit is limiting: no call waits then.
	closed atomic.Bool

	// The calls waiting for a place, first first, each told on its
	// channel whether it got one; nwait counts them for Release.
	wmu     sync.Mutex
	waiters []chan bool
	nwait   atomic.Int64

	min, max, burst float64
	maxWait         time.Duration
	tol             float64
	slack           time.Duration
	window          time.Duration
	minSamples      int

	mu sync.Mutex
	// The current window: its start (calls admitted earlier are not its
	// samples), and its samples' count and total latency.
	start time.Time
	n     int
	sum   time.Duration
	// done counts every sampled call that ended in the window, those
	// admitted before it too.
	done int
	// exact is the limit unrounded; baseline the service's latency when
	// not held back (0 until the first window ends). limiting is set from
	// a window that shows queueing until one that holds nothing back.
	exact    float64
	baseline time.Duration
	limiting bool
	// After a shrink, the window it judged by: its mean and peak.
	shrunk               bool
	shrunkMean, shrunkPk float64
	// carried is how many calls were in flight when the window began.
	carried float64
}

// New returns a Limiter, or an error wrapping ErrConfig.
func New(cfg Config) (*Limiter, error) {
	if cfg.Min == 0 {
		cfg.Min = 1
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Burst == 0 {
		cfg.Burst = min(DefaultBurst, cfg.Max)
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Slack == 0 {
		cfg.Slack = DefaultSlack
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = DefaultMinSamples
	}
	switch {
	case cfg.Min < 1 || cfg.Max < cfg.Min || cfg.Burst < cfg.Min || cfg.Burst > cfg.Max:
		return nil, fmt.Errorf("%w: limits min %d, burst %d, max %d: want 1 <= min <= burst <= max", ErrConfig, cfg.Min, cfg.Burst, cfg.Max)
	case cfg.Tolerance < 1.1:
		return nil, fmt.Errorf("%w: tolerance %v: want at least 1.1", ErrConfig, cfg.Tolerance)
	case cfg.Slack < 0 || cfg.Window < 0 || cfg.MinSamples < 1 || cfg.MaxWait < 0:
		return nil, fmt.Errorf("%w: slack %v, window %v of %d samples", ErrConfig, cfg.Slack, cfg.Window, cfg.MinSamples)
	}
	l := &Limiter{min: float64(cfg.Min), max: float64(cfg.Max), burst: float64(cfg.Burst), maxWait: cfg.MaxWait,
		tol: cfg.Tolerance, slack: cfg.Slack, window: cfg.Window, minSamples: cfg.MinSamples,
		exact: float64(cfg.Max), clock: time.Now}
	l.start = l.clock()
	l.limit.Store(int64(cfg.Max))
	return l, nil
}

// TryAcquire admits a call if fewer than the limit are in flight, and
// never waits. An admitted call must be released once ([Limiter.Release]).
func (l *Limiter) TryAcquire() bool {
	if l.take() {
		return true
	}
	l.held()
	return false
}

// take takes a place if there is one.
func (l *Limiter) take() bool {
	for {
		n := l.inflight.Load()
		if n >= l.limit.Load() {
			return false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			for p := l.peak.Load(); n+1 > p && !l.peak.CompareAndSwap(p, n+1); p = l.peak.Load() {
			}
			return true
		}
	}
}

// held counts a call the limit held back, in this window.
func (l *Limiter) held() {
	if l.refused.Add(1) == 1 {
		l.heldFrom.Store(l.clock().UnixNano())
	}
}

// MayWait reports whether a call TryAcquire refused may wait for a place
// ([Limiter.Wait]): while the service shows no queueing, the limit holds
// back only a burst, which a moment's wait absorbs; once it does, a call
// over the limit is refused at once.
func (l *Limiter) MayWait() bool { return !l.closed.Load() && l.maxWait > 0 }

// Wait admits a call once a place is free, first come first served, or
// reports after MaxWait, or as soon as the limiter sees a queue at the
// service, that there is none. The wait is no sample.
func (l *Limiter) Wait() bool {
	l.wmu.Lock()
	l.nwait.Add(1)
	if l.take() {
		l.nwait.Add(-1)
		l.wmu.Unlock()
		return true
	}
	if l.closed.Load() {
		l.nwait.Add(-1)
		l.wmu.Unlock()
		return false
	}
	l.held()
	w := make(chan bool, 1)
	l.waiters = append(l.waiters, w)
	l.wmu.Unlock()
	t := time.NewTimer(l.maxWait)
	defer t.Stop()
	select {
	case ok := <-w:
		return ok
	case <-t.C:
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
		l.nwait.Add(-1)
		return false
	}
	return <-w // told meanwhile
}

// wake gives the free places to the calls waiting, or, refuse set,
// tells them all there is none.
func (l *Limiter) wake(refuse bool) {
	if l.nwait.Load() == 0 {
		return
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for len(l.waiters) > 0 {
		ok := !refuse && l.take()
		if !ok && !refuse {
			return
		}
		l.waiters[0] <- ok
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		l.nwait.Add(-1)
	}
}

// Release ends an admitted call that started at start. With sample, its
// latency (from start to now) is a sample of the service's; without, it
// only frees its place (a stream's head, a call that failed before or
// without reaching the service).
func (l *Limiter) Release(start time.Time, sample bool) {
	if !sample {
		l.inflight.Add(-1)
		l.wake(false)
		return
	}
	l.release(start, l.clock())
}

// release ends a sampled call: the window is judged first, so that a
// queue it shows turns the waiting calls away before a place is freed
// for them.
func (l *Limiter) release(start, now time.Time) {
	l.inflight.Add(-1)
	l.sample(start, now)
	l.wake(false)
}

func (l *Limiter) sample(start, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done++
	if start.Before(l.start) {
		// Admitted under an earlier window's limit: no sample. But when
		// the window's own calls are slow to come back, they may be
		// queued behind these: by Little's law the calls in flight and
		// the rate they end at tell how long a call now takes.
		if elapsed := now.Sub(l.start); !l.limiting && l.baseline > 0 && l.n < l.minSamples && elapsed >= max(l.window, 2*l.baseline) {
			if est := elapsed * time.Duration(l.inflight.Load()) / time.Duration(l.done); l.queueing(est, l.tol, l.slack) {
				l.n, l.sum = 1, est
				l.update(now)
			}
		}
		return
	}
	if hf := l.heldFrom.Load(); !l.limiting && hf > l.start.UnixNano() {
		// The open limit began to hold calls back in this window: the
		// calls admitted before met a less busy service than the later
		// ones do, and judged with them, they would hide a queue that
		// is forming (and open the limit further into it). The window
		// starts again from the first refusal.
		l.start, l.n, l.sum, l.done = time.Unix(0, hf), 0, 0, 0
		if start.Before(l.start) {
			return
		}
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
	inflight := l.inflight.Load()
	peak := float64(l.peak.Swap(inflight))
	// heldFrom first: a refusal between the two is then this window's,
	// and the next window's first refusal stores its time again.
	l.heldFrom.Store(0)
	carried := l.carried
	l.carried = float64(inflight)
	held := l.refused.Swap(0) > 0 || peak >= float64(l.limit.Load())
	next := l.exact
	shrunk := l.shrunk
	l.shrunk = false
	switch {
	case l.baseline == 0:
		l.baseline = mean
	case shrunk && carried <= l.exact && peak <= 0.75*l.shrunkPk && float64(mean) >= 0.9*l.shrunkMean:
		// Fewer calls in flight, and none queued from before the shrink
		// (more in flight at its start than its limit) to wait behind,
		// yet no shorter latency: it is not queueing here that makes the
		// service slow.
		l.baseline = mean
	case l.queueing(mean, l.tol, l.slack) || l.limiting && l.queueing(mean, l.tol, l.slack/10):
		if !l.limiting {
			next = min(next, peak)
			l.limiting = true
		}
		next = max(next*float64(l.baseline)/float64(mean), next/8)
		l.shrunk, l.shrunkMean, l.shrunkPk = true, float64(mean), peak
	case l.limiting && held && l.queueing(mean, (1+l.tol)/2, l.slack/10):
		// Calls queue a little: hold.
	case l.limiting && held:
		next += max(1, math.Sqrt(next)/2)
	default:
		// The limit held nothing back, or it is open: the window's mean
		// is the service's own latency at the load it had, unless a
		// queue is forming under the slack (then the baseline must not
		// learn it).
		if !l.queueing(mean, (1+l.tol)/2, 0) {
			l.baseline += (mean - l.baseline) / 4
		}
		if !held {
			l.limiting = false
		}
	}
	if !l.limiting {
		next = max(l.burst, 4*peak)
	}
	l.exact = min(max(next, l.min), l.max)
	l.limit.Store(int64(l.exact))
	l.start, l.n, l.sum, l.done = now, 0, 0, 0
	l.closed.Store(l.limiting)
	// A larger limit lets waiting calls in; a queue seen turns them away.
	l.wake(l.limiting)
}

// queueing reports whether a window's mean latency says calls queue at
// the service: over tol times the baseline, and by more than slack.
func (l *Limiter) queueing(mean time.Duration, tol float64, slack time.Duration) bool {
	return float64(mean) > tol*float64(l.baseline) && mean-l.baseline > slack
}

// Inflight is how many admitted calls are not released.
func (l *Limiter) Inflight() int { return int(l.inflight.Load()) }

// Limit is the limit now.
func (l *Limiter) Limit() int { return int(l.limit.Load()) }
