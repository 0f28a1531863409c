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

// growth is how much a round of calls that came back as fast as ever
// grows the limit while it probes (at least by one): TCP's slow start
// doubles, but the round that passes the service's capacity lets in
// up to growth-1 times its concurrency more calls than it serves at
// once, and each of those waits once at the service.
const growth = 1.25

// maxPatience bounds how rarely the limit probes past a concurrency that
// showed a queue: its headroom there, a quarter of a call a window, is
// divided by at most this, so a service that got faster is found within
// about 4 × maxPatience windows (a window is at least twice the
// baseline latency).
const maxPatience = 16

// smallRound: a round of at most this many calls ends its slow start on
// one call that queued (a larger one on two).
const smallRound = 8

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("adaptivelimit: invalid configuration")

// Config configures a [Limiter]. Zero values take the defaults noted on
// each field.
type Config struct {
	// Min and Max bound the limit. Defaults 1 and 1024.
	Min, Max int
	// Initial is the least the limit falls back to while the service
	// shows no queueing and the calls do not reach it: then it is twice
	// the most calls in flight in the last window, at least Initial.
	// Until the first window ends, the limiter knows nothing of the
	// service, and the limit is Max. Default 4 (at most Max).
	Initial int
	// MaxWait is the longest a call over the limit may wait for a place
	// ([Limiter.Wait]) while the service shows no queueing; it waits
	// half the service's typical latency, at least Slack, and at most
	// MaxWait. Default 150ms: shorter than a caller's least wait for a
	// sign of life (wire.MinTakeWithin), since a call waiting here has
	// given none and would otherwise be taken for lost and sent again.
	MaxWait time.Duration
	// Tolerance is how many times its baseline a call's latency, or a
	// window's mean, may be before it counts as queueing while the limit
	// probes; the bands of the least latency and of the gradient are
	// set from it (1.25 and 1.1 times the baseline at 1.5). Default 1.5;
	// at least 1.1.
	Tolerance float64
	// Slack is the least a call's latency, or a window's mean, must
	// exceed the baseline by to count as queueing while the limit
	// probes, so that a fast service's jitter (a garbage collection, a
	// process starved of CPU for a moment) is not taken for a queue;
	// limiting, a tenth of it. It is also the least a call may wait for
	// a place. Default 50ms.
	Slack time.Duration
	// Window is the shortest window of samples while limiting; a window
	// also lasts at least twice the baseline latency, and holds
	// MinSamples or two rounds of the limit's samples, the fewer. A
	// probing window ends sooner, at a round that grows the limit.
	// Default 100ms.
	Window time.Duration
	// MinSamples is the most samples a window needs to be judged.
	// Default 10.
	MinSamples int
}

// Defaults of Config.
const (
	DefaultMax        = 1024
	DefaultInitial    = 4
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
	limit atomic.Int64
	// After a slow-start step, the limit before it (0: none): the
	// step's new places are let in once, and again only when the
	// window's calls have come back as many as the limit (admitted and
	// back count the window's calls), so the round that passes the
	// service's capacity queues once there, not in the next round too,
	// which begins before the call that queued has come back.
	prior, admitted, back atomic.Int64
	// While limiting, a limit the headroom raised to where a queue once
	// showed (the ceiling) is a probe: its last place is let in once
	// (probeClaim holds the number of the window, probeGen, whose probe
	// place a call took), and the window ends early when a call shows
	// the queue again, so a probe that finds no more capacity costs one
	// call that waits at the service, not one a round for a whole
	// window.
	probe                atomic.Bool
	probeGen, probeClaim atomic.Int64
	// probeFrom is when the probe's place opens (Unix nanoseconds):
	// three quarters of a typical call after the window began. The
	// window begins at a call's end, and a service at its capacity
	// whose calls take about the same time ends them in step: a place
	// let in at once would wait nearly a whole call for a server, one
	// let in later only what is left of the call ahead.
	probeFrom atomic.Int64
	inflight  atomic.Int64
	peak      atomic.Int64
	refused   atomic.Int64
	clock     func() time.Time // time.Now; the tests' virtual time
	// closed is set while the limit is limiting: no call waits then.
	closed atomic.Bool
	// waitFor is how long a call may wait for a place now, and
	// waitPlaces how many places free within it per place of the limit,
	// in thousandths.
	waitFor, waitPlaces atomic.Int64

	// The calls waiting for a place, first first, each told on its
	// channel whether it got one; nwait counts them for Release.
	wmu     sync.Mutex
	waiters []chan bool
	nwait   atomic.Int64

	min, max, initial float64
	maxWait           time.Duration
	tol               float64
	slack             time.Duration
	window            time.Duration
	minSamples        int

	mu sync.Mutex
	// The current window: its start (calls admitted earlier are not its
	// samples), and its samples' count and total latency.
	start time.Time
	n     int
	sum   time.Duration
	// done counts every sampled call that ended in the window, those
	// admitted before it too.
	done int
	// doneSum is their total latency: the typical latency learns from
	// it, not from the window's samples alone, which a long call is
	// less likely to be (it ends in a later window).
	doneSum time.Duration
	// exact is the limit unrounded; baseline the service's latency when
	// not held back (0 until the first window ends). limiting is set from
	// a window that shows queueing until one that holds nothing back.
	exact    float64
	baseline time.Duration
	// typical is the service's mean latency when not held back: what a
	// window's mean, or a single call, is held against (a service whose
	// calls vary has a mean well over its least).
	typical time.Duration
	// leastDev is how far a window's least latency strays from the
	// baseline while nothing queues (averaged): a service whose calls
	// vary has windows whose least varies too, which is no queue.
	leastDev time.Duration
	limiting bool
	// After a shrink, the window it judged by: its least latency and
	// its most calls in flight.
	shrunk                bool
	shrunkLeast, shrunkPk float64
	// stale counts the windows in a row after a shrink that did not
	// shorten the latency; undo is the limit before the first shrink of
	// a run of them.
	stale int
	undo  float64
	// ceiling is the least limit that showed a queue while limiting (0:
	// none yet), patience what the headroom past the limit below it is
	// divided by: doubled, up to MaxPatience, each time the headroom
	// finds the queue again, so probes that keep finding no more
	// capacity come less and less often.
	ceiling, patience float64
	// The window's samples that showed queueing while the limit probes:
	// their count and total latency.
	over    int
	overSum time.Duration
	// least is the window's least latency: the service's own, plus the
	// wait of a queue that every call of the window met.
	least time.Duration
	// round is how many samples make a round of the limit while it
	// probes: the limit when the window began.
	round int
}

// New returns a Limiter, or an error wrapping ErrConfig.
func New(cfg Config) (*Limiter, error) {
	if cfg.Min == 0 {
		cfg.Min = 1
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Initial == 0 {
		cfg.Initial = min(DefaultInitial, cfg.Max)
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
	case cfg.Min < 1 || cfg.Max < cfg.Min || cfg.Initial < cfg.Min || cfg.Initial > cfg.Max:
		return nil, fmt.Errorf("%w: limits min %d, initial %d, max %d: want 1 <= min <= initial <= max", ErrConfig, cfg.Min, cfg.Initial, cfg.Max)
	case cfg.Tolerance < 1.1:
		return nil, fmt.Errorf("%w: tolerance %v: want at least 1.1", ErrConfig, cfg.Tolerance)
	case cfg.Slack < 0 || cfg.Window < 0 || cfg.MinSamples < 1 || cfg.MaxWait < 0:
		return nil, fmt.Errorf("%w: slack %v, window %v of %d samples", ErrConfig, cfg.Slack, cfg.Window, cfg.MinSamples)
	}
	l := &Limiter{min: float64(cfg.Min), max: float64(cfg.Max), initial: float64(cfg.Initial), maxWait: cfg.MaxWait,
		tol: cfg.Tolerance, slack: cfg.Slack, window: cfg.Window, minSamples: cfg.MinSamples,
		exact: float64(cfg.Max), clock: time.Now}
	l.start, l.round = l.clock(), cfg.Max
	l.limit.Store(int64(cfg.Max))
	l.waitFor.Store(int64(cfg.MaxWait))
	l.waitPlaces.Store(1 << 40) // no bound until a baseline
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
		n, lim := l.inflight.Load(), l.limit.Load()
		if p := l.prior.Load(); p > 0 && l.admitted.Load() >= lim && l.back.Load() < lim {
			lim = p
		}
		// The probe's fields are read only at its place.
		var gen, claim int64
		probe := l.probe.Load() && n+1 >= lim
		if probe {
			gen, claim = l.probeGen.Load(), l.probeClaim.Load()
			if claim == gen || l.clock().UnixNano() < l.probeFrom.Load() {
				lim-- // the probe's place is not open yet, or was let in once
				probe = false
			}
		}
		if n >= lim {
			return false
		}
		if probe && !l.probeClaim.CompareAndSwap(claim, gen) {
			continue // another call took the probe's place
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			l.admitted.Add(1)
			for p := l.peak.Load(); n+1 > p && !l.peak.CompareAndSwap(p, n+1); p = l.peak.Load() {
			}
			return true
		}
		if probe {
			// Given back, unless a later window's probe was claimed
			// meanwhile.
			l.probeClaim.CompareAndSwap(gen, claim)
		}
	}
}

// held counts a call the limit held back, in this window.
func (l *Limiter) held() { l.refused.Add(1) }

// MayWait reports whether a call TryAcquire refused may wait for a place
// ([Limiter.Wait]): while the service shows no queueing, the limit holds
// back only a burst, which a moment's wait absorbs; once it does, a call
// over the limit is refused at once.
func (l *Limiter) MayWait() bool {
	if l.closed.Load() || l.maxWait <= 0 {
		return false
	}
	// The calls waiting are bounded by time, not by a count: no more
	// than the places that free within a wait (waitPlaces per place of
	// the limit), so a call that waits will most likely get one; the
	// others are refused at once.
	return l.nwait.Load()*1000 < max(1000, l.limit.Load()*l.waitPlaces.Load())
}

// Wait admits a call once a place is free, last come first served, or
// reports after its wait (half the typical latency, at least Slack, at
// most MaxWait), or as soon as the limiter sees a queue at the service,
// that there is none. The wait is no sample.
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
	t := time.NewTimer(time.Duration(l.waitFor.Load()))
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

// wake gives the free places to the calls waiting, the one that waited
// least first, or, refuse set, tells them all there is none. Last come
// first served (Facebook's adaptive LIFO, in "Fail at scale"): when the
// places come from a limit that has just grown past the service's
// capacity, the calls let in are those that queue at the service, and a
// call that had waited for its place first would wait twice; and in a
// burst the oldest waits end first anyway, each within its bound.
func (l *Limiter) wake(refuse bool) {
	if l.nwait.Load() == 0 {
		return
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for n := len(l.waiters); n > 0; n-- {
		ok := !refuse && l.take()
		if !ok && !refuse {
			return
		}
		l.waiters[n-1] <- ok
		l.waiters[n-1] = nil
		l.waiters = l.waiters[:n-1]
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
	lat := now.Sub(start)
	l.done++
	l.doneSum += lat
	if start.Before(l.start) {
		// Admitted under an earlier window's limit: no sample. But when
		// the window's own calls are slow to come back, they may be
		// queued behind these: by Little's law the calls in flight and
		// the rate they end at tell how long a call now takes.
		if elapsed := now.Sub(l.start); !l.limiting && l.baseline > 0 && l.n < l.minSamples && elapsed >= max(l.window, 2*l.typical) {
			if est := elapsed * time.Duration(l.inflight.Load()) / time.Duration(l.done); l.queueingMean(est, l.tol, l.slack) {
				l.n, l.sum, l.least = 1, est, est
				l.update(now)
			}
		}
		return
	}
	l.n++
	l.back.Store(int64(l.n))
	l.sum += lat
	if l.n == 1 || lat < l.least {
		l.least = lat
	}
	if l.probe.Load() && lat > l.typical+2*(l.typical-l.baseline)+l.slack/10 {
		// The probe found the queue again (only its call could wait:
		// the others were let in under the limit below it; a call over
		// the typical latency by twice what it is over the least is
		// taken to have waited): back below
		// at once, and probing past it half as often from now on.
		l.patience = min(max(1, 2*l.patience), maxPatience)
		l.exact = max(l.ceiling-1, l.min)
		l.limit.Store(int64(l.exact))
		l.probe.Store(false)
		l.restart(now)
		return
	}
	if !l.limiting && l.baseline > 0 {
		// Probing: a queue shows in single calls, not in a window's
		// mean, which the calls admitted before the queue formed would
		// hold down for a whole window; and a round of calls that came
		// back as fast as ever, while the limit held others back,
		// grows the limit by a quarter at once (growth): TCP's slow
		// start, slower.
		if l.queueingMean(lat, l.tol, l.slack) && lat > l.typical+2*(l.typical-l.baseline) {
			l.over++
			l.overSum += lat
			// Two calls at least, a quarter of the window's, and a
			// window of at least Window and the baseline: a service
			// whose latency varies widely has a slow call now and then,
			// and a host short of CPU for a moment slows every call in
			// flight at once, which a queue outlasts.
			if (l.over >= 2 || l.round <= smallRound) && 4*l.over >= l.n && now.Sub(l.start) >= max(l.window, l.baseline) {
				// Judged by the calls that queued.
				l.n, l.sum, l.least = l.over, l.overSum, l.overSum/time.Duration(l.over)
				l.update(now)
				return
			}
		} else if l.over == 0 && l.n >= l.round && l.heldBack() {
			if l.regular() && l.leastQueued(l.least, (1+l.tol)/2) {
				// Every call of the round waited behind another, though
				// none by Slack (a fast service's queue): judged now,
				// not grown past it. (Only where calls take about the
				// same time: a few calls' least varies too much else.)
				l.update(now)
				return
			}
			l.prior.Store(int64(l.exact))
			l.exact = min(max(l.exact*growth, l.exact+1), l.max)
			l.limit.Store(int64(l.exact))
			l.restart(now)
			return
		}
	}
	// A probe's window lasts until its call has surely come back: it
	// waits at most a call at the service, then takes one.
	span := 2 * l.baseline
	if l.probe.Load() {
		span = max(span, 3*l.typical)
	}
	if l.n >= min(l.minSamples, max(2, 2*l.round)) && now.Sub(l.start) >= max(l.window, span) {
		l.update(now)
	}
}

// heldBack reports whether the limit held calls back in this window: it
// refused one, one waits, or the calls in flight reached it.
func (l *Limiter) heldBack() bool {
	return l.refused.Load() > 0 || l.nwait.Load() > 0 || l.peak.Load() >= l.limit.Load()
}

// restart begins a window of samples at from: the calls admitted from
// then on, the limit now a round of them.
func (l *Limiter) restart(from time.Time) {
	l.start, l.n, l.sum, l.done, l.doneSum, l.over, l.overSum = from, 0, 0, 0, 0, 0, 0
	l.admitted.Store(0)
	l.back.Store(0)
	l.round = max(int(l.exact), 1)
	l.refused.Store(0)
	l.peak.Store(l.inflight.Load())
}

// update ends the window at now and sets the limit by its samples.
// Their least latency is the sign of a queue at the service: once more
// calls are let in than the service serves at a time, every call waits
// behind one, while the mean and the tail also rise when the host is
// short of CPU or a call is slow by itself (TCP Vegas's base and actual
// round-trip times, which Netflix's Vegas limit follows too).
func (l *Limiter) update(now time.Time) {
	mean, least := l.sum/time.Duration(l.n), l.least
	wasProbe := l.probe.Load()
	// The mean of every call that ended in the window, for the typical
	// latency (see doneSum).
	ended := mean
	if l.done > 0 {
		ended = l.doneSum / time.Duration(l.done)
	}
	inflight := l.inflight.Load()
	peak := float64(l.peak.Swap(inflight))
	held := l.refused.Swap(0) > 0 || peak >= float64(l.limit.Load()) || l.nwait.Load() > 0
	next := l.exact
	shrunk := l.shrunk
	l.shrunk = false
	// Bands of the least latency over the baseline: a queue (shrink),
	// the service's own (grow), and between them a hold.
	over, calm := (1+l.tol)/2, 1+(l.tol-1)/5
	switch {
	case !shrunk:
	case peak <= 0.75*l.shrunkPk && float64(least) >= 0.9*l.shrunkLeast:
		l.stale++
	default:
		l.stale = 0
	}
	switch {
	case l.baseline == 0:
		// The first window: the service's latency, as it came, and
		// from now on the limit probes from twice the calls in flight.
		l.baseline, l.typical = least, max(ended, least)
		if !held {
			next = max(l.initial, 2*peak)
		}
	case l.stale >= 2:
		// Two windows in a row after a shrink with a quarter fewer
		// calls in flight, yet no shorter least latency (one might be
		// the calls queued from before the shrink, still ahead): it is
		// not queueing here that makes the service slow, but something
		// behind it. The shrinks were mistaken: undone.
		l.baseline, l.typical, l.stale = least, max(ended, least), 0
		next = max(next, l.undo)
	case !l.limiting && (l.leastQueued(least, over) || l.queueingMean(mean, l.tol, l.slack)):
		// A queue at the service: the limit follows it from now on,
		// from the calls the service serves without one.
		l.limiting = true
		l.undo = next
		if c := math.Floor(l.exact); l.ceiling == 0 || c < l.ceiling {
			l.ceiling, l.patience = c, 2
		}
		next = max(min(next, peak)*min(float64(l.baseline)/float64(least), 1.5*float64(l.typical)/float64(mean)), next/2)
		l.shrunk, l.shrunkLeast, l.shrunkPk = true, float64(least), peak
	case l.limiting && held:
		// The gradient (Netflix concurrency-limits' Gradient2): the
		// limit times the baseline over the mean is the concurrency
		// the service serves without a queue; plus a little headroom,
		// so that a service that got faster shows it. Halved at most,
		// and grown by sqrt(limit)/2 at most, a window.
		g := min(float64(l.typical)/float64(mean), 1)
		// Within the service's own variation of a window's mean (its
		// calls' spread, the typical latency over the least, over the
		// root of the window's samples, twice) is no queue either.
		queued := l.queueingMean(mean, calm, l.slack/10) && float64(mean-l.typical) > 2*float64(l.typical-l.baseline)/math.Sqrt(float64(l.n))
		if !queued {
			g = 1 // the service's own jitter
			if l.ceiling > 0 && peak >= l.ceiling && !wasProbe {
				// As many calls in flight as once queued, and no queue
				// now: the service serves more than it did. (Not from a
				// probe's window: its one call may have waited too little
				// to show; the next window, with every place open, says.)
				l.ceiling, l.patience = 0, 1
			}
		} else if c := math.Floor(l.exact); l.ceiling == 0 || c <= l.ceiling {
			// The headroom found the queue again: it probes past the
			// limit below it half as often from now on.
			l.patience = min(max(1, 2*l.patience), maxPatience)
			l.ceiling = c
		}
		headroom := max(0.25, math.Sqrt(next)/8)
		if l.ceiling > 0 && next*g >= l.ceiling-1 {
			headroom /= l.patience
		}
		next = min(max(next*g+headroom, next/2), next+max(1, math.Sqrt(next)/2))
		if l.leastQueued(least, over) || l.queueingMean(mean, l.tol, l.slack/10) {
			if !shrunk {
				l.undo = l.exact
			}
			l.shrunk, l.shrunkLeast, l.shrunkPk = true, float64(least), peak
		}
	default:
		// The limit held nothing back, or it probes: the window's least
		// latency is the service's own at the load it had, unless a
		// queue is forming (then the baseline must not learn it).
		// How far the least strays, from every window that showed no
		// queue (those that taught the baseline only stray little).
		l.leastDev += ((least - l.baseline).Abs() - l.leastDev) / 4
		if !l.queueing(least, calm, 0) {
			l.baseline += (least - l.baseline) / 4
			l.typical += (max(ended, l.baseline) - l.typical) / 4
		}
		if !held {
			// No call reached the limit: it probes again, from where
			// it is (never reopened wide: the next overload's first
			// calls would queue at the service), and falls back to
			// twice the calls in flight, so an idle spell leaves no
			// large limit for a flood to pour through.
			l.limiting = false
			next = min(next, max(l.initial, 2*peak))
			l.ceiling, l.patience = 0, 1
		}
	}
	was := l.limit.Load()
	l.exact = min(max(next, l.min), l.max)
	// A limit raised to the ceiling or past it, while limiting, is a
	// probe (see probe), for a service whose calls take about the same
	// time: one call's wait can be told from its spread. The probe's
	// fields are set before the limit, so that no admission sees the new
	// limit with the last window's.
	l.probe.Store(false)
	l.probeGen.Add(1) // no claim is this window's
	l.probeFrom.Store(now.Add(l.typical * 3 / 4).UnixNano())
	l.probe.Store(l.limiting && l.regular() && l.ceiling > 0 && int64(l.exact) > was && math.Floor(l.exact) >= l.ceiling)
	l.limit.Store(int64(l.exact))
	l.prior.Store(0)
	l.restart(now)
	l.closed.Store(l.limiting)
	wait := min(max(l.typical/2, l.slack), l.maxWait)
	l.waitFor.Store(int64(wait))
	// Each call in flight frees its place once a baseline latency, and
	// while the limit probes it grows by a quarter each round: within r
	// rounds, (1.25^r - 1) / 0.25 places per place (Little's law).
	l.waitPlaces.Store(int64(1000 * min((math.Pow(growth, float64(wait)/float64(max(l.typical, 1)))-1)/(growth-1), 1<<30)))
	// A larger limit lets waiting calls in; a queue seen turns them away.
	l.wake(l.limiting)
}

// queueing reports whether a window's mean latency says calls queue at
// the service: over tol times the baseline, and by more than slack.
func (l *Limiter) queueing(mean time.Duration, tol float64, slack time.Duration) bool {
	return l.baseline > 0 && float64(mean) > tol*float64(l.baseline) && mean-l.baseline > slack
}

// leastQueued reports whether a window's least latency says every call
// of it waited behind another: over tol times the baseline, by more than
// a tenth of Slack and by more than four times the least's own straying.
func (l *Limiter) leastQueued(least time.Duration, tol float64) bool {
	// The least's straying is bounded by the calls' own spread (a
	// window whose every call waited strays further, and must not teach
	// it that it may).
	return l.queueing(least, tol, max(l.slack/10, 4*min(l.leastDev, l.typical-l.baseline)))
}

// regular reports whether the service's calls take about the same time:
// its typical latency within a quarter of its least. Then a call that
// waited at the service shows by itself; a heavy tail has calls as slow
// as a wait every window.
func (l *Limiter) regular() bool { return 4*(l.typical-l.baseline) <= l.typical }

// queueingMean is queueing for a mean latency, or a single call's: held
// against the typical latency, not the least.
func (l *Limiter) queueingMean(mean time.Duration, tol float64, slack time.Duration) bool {
	return l.typical > 0 && float64(mean) > tol*float64(l.typical) && mean-l.typical > slack
}

// Inflight is how many admitted calls are not released.
func (l *Limiter) Inflight() int { return int(l.inflight.Load()) }

// Limit is the limit now.
func (l *Limiter) Limit() int { return int(l.limit.Load()) }
