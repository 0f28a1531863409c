package adaptivelimit

// From the review of b382a5f (decisions 173, 174): tests that showed its
// defects, and bounds on what is not met yet (docs/decisions.md, 177).

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func expWork(rng *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(rng.ExpFloat64() * float64(mean))
}

func uniformWork(rng *rand.Rand, mean, spread time.Duration) time.Duration {
	return mean - spread + time.Duration(rng.Int64N(int64(2*spread)))
}

// TestReviewHeavyTailFindsMoreCapacity: TestMoreCapacityIsFound for a
// service whose calls are exponential (64 calls at a time, 20 ms mean,
// 3,200 a second), at 10x, given twice its servers at 35 s. Expected:
// at least 80% of the new capacity served in the last 10 s. Every probe
// past the ceiling is ended by decision 173's single-call test (a call
// over typical + 2(typical - baseline) + 5 ms, about 3.3 typical for an
// exponential service, which some of the hundreds of calls of a probe's
// window always are), so the limit stays one below the ceiling, the
// patience at 16, and the new servers are never found. The parent found
// them (0.99 of the new capacity).
func TestReviewHeavyTailFindsMoreCapacity(t *testing.T) {
	l := newLimiter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	s := doubling(64, 35*time.Second, func() time.Duration { return expWork(rng, 20*time.Millisecond) })
	out := simulate(t, l, s,
		phase{rate: 800, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 32000, dur: 30 * time.Second},
		phase{rate: 32000, dur: 25 * time.Second, settle: 15 * time.Second})
	more := out[2]
	t.Logf("more servers: served %d in 10 s (capacity 64,000), limits %d..%d, ceiling %v patience %v",
		more.served, slices.Min(more.limits), slices.Max(more.limits), l.ceiling, l.patience)
	if want := int(0.8 * 6400 * 10); more.served < want {
		t.Errorf("served %d calls in 10 s of a service that serves 6,400 a second: want at least %d", more.served, want)
	}
}

// TestReviewHeavyTailLimitNotBelowCapacity: the shape with
// exponential calls (4 at a time, 100 ms mean) at 10x, given 8 servers
// at 35 s. Expected: in the last 10 s the limit is never below the 4 the
// service served before, and at least 80% of the new capacity is
// served. The ceiling ratchets down (5, then 4: a window's mean read as
// a queue, then each probe at the ceiling ended by one long call), and
// the limit sits at 3 with 8 servers idle. (The parent held it at 1:
// an old defect, not fixed.)
func TestReviewHeavyTailLimitNotBelowCapacity(t *testing.T) {
	l := newLimiter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	s := doubling(4, 35*time.Second, func() time.Duration { return expWork(rng, 100*time.Millisecond) })
	out := simulate(t, l, s,
		phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 400, dur: 30 * time.Second},
		phase{rate: 400, dur: 25 * time.Second, settle: 15 * time.Second})
	more := out[2]
	t.Logf("8 servers: served %d in 10 s, limits %d..%d, ceiling %v patience %v typical %v baseline %v",
		more.served, slices.Min(more.limits), slices.Max(more.limits), l.ceiling, l.patience, l.typical, l.baseline)
	if m := slices.Min(more.limits); m < 4 {
		t.Errorf("limit fell to %d with 8 servers: want at least the 4 it served before", m)
	}
	if want := int(0.8 * 80 * 10); more.served < want {
		t.Errorf("served %d calls in 10 s: want at least %d", more.served, want)
	}
}

// TestReviewJitteryNoRefusalsBelowCapacity: TestNoRefusalsBelowCapacity
// for the jitter test's service shape with more servers (16 calls at a
// time, 40 to 160 ms, 160 a second) at a quarter and half its capacity.
// Expected: under 1% refused. Single calls over 1.5 times a typical
// learned low (about 87 ms for a mean of 100) end the slow start, and
// the gradient then reads the window's mean as a queue: 16% and 45%
// refused. (The parent: 78% and 85%.)
func TestReviewJitteryNoRefusalsBelowCapacity(t *testing.T) {
	for _, load := range []float64{0.25, 0.5} {
		l := newLimiter(t)
		rng := rand.New(rand.NewPCG(1, 2))
		s := &service{servers: 16, work: func(time.Duration) time.Duration { return uniformWork(rng, 100*time.Millisecond, 60*time.Millisecond) }}
		o := simulate(t, l, s, phase{rate: load * 160, dur: 30 * time.Second, settle: 2 * time.Second})[0]
		t.Logf("load %.2f: served %d refused %d, limits %d..%d", load, o.served, o.refused, slices.Min(o.limits), slices.Max(o.limits))
		// Refused: 2% and 7% (decision 172's limiter: 78% and 85%);
		// the goal is TestNoRefusalsBelowCapacity's 1%, not reached for
		// a spread this wide.
		if bound := map[float64]int{0.25: 5, 0.5: 10}[load]; o.refused*100 > bound*(o.served+o.refused) {
			t.Errorf("at %.0f%% of capacity refused %d of %d calls: want under %d%%", 100*load, o.refused, o.served+o.refused, bound)
		}
	}
}

// TestReviewJitteryLargerServiceKeepsItsThroughput:
// TestJitteryServiceKeepsItsThroughput's 60 ms spread with 16 servers
// (160 a second) at 10x. Expected: at least 80% of capacity served.
// The ceiling ratchets down a call at a time on windows whose mean the
// gradient reads as a queue (no call ever queued at the service), and
// the limit goes 11, 7, 6, 5, 4, 3, 2, 1: about half the capacity is
// served. (The parent: 6%.)
func TestReviewJitteryLargerServiceKeepsItsThroughput(t *testing.T) {
	l := newLimiter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	s := &service{servers: 16, work: func(time.Duration) time.Duration { return uniformWork(rng, 100*time.Millisecond, 60*time.Millisecond) }}
	out := simulate(t, l, s,
		phase{rate: 40, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 1600, dur: 60 * time.Second, settle: 5 * time.Second})
	o := out[1]
	t.Logf("overload: served %d in 55 s, limits %d..%d (median %d), most queued at the service %d", o.served,
		slices.Min(o.limits), slices.Max(o.limits), med(o.limits), s.maxQueue)
	if want := int(0.8 * 160 * 55); o.served < want {
		t.Errorf("served %d calls in 55 s: want at least %d (80%% of capacity)", o.served, want)
	}
}

// TestReviewHeavyTailNoStandingQueue: a lognormal service (4 calls at a
// time, median 100 ms, sigma 1, mean 165 ms) at 10x for a minute.
// Expected, as for a fixed service: the limit settles at the
// concurrency, one more now and then (median at most 5), and the served
// calls' p99 within twice the unloaded. The sqrt(n) band (2 × (typical
// - baseline) / sqrt(n), here 2 × 181 ms / sqrt(10) = 115 ms) passes a
// queue of 2 to 3 calls as noise; a probe whose window saw no single
// call over 553 ms clears the ceiling, and the limit climbs to 8.
// (The parent held it at 1 and served a quarter of the capacity.)
func TestReviewHeavyTailNoStandingQueue(t *testing.T) {
	l := newLimiter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var qsum, qn float64
	s := &service{servers: 4}
	s.work = func(now time.Duration) time.Duration {
		if now > 10*time.Second {
			qsum += float64(len(s.queue))
			qn++
		}
		return time.Duration(math.Exp(rng.NormFloat64()) * float64(100*time.Millisecond))
	}
	out := simulate(t, l, s,
		phase{rate: 6, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 240, dur: 60 * time.Second, settle: 5 * time.Second})
	u, o := out[0], out[1]
	t.Logf("overload: served %d, limits %d..%d median %d, mean queue at the service %.2f, p99 %v (unloaded %v)",
		o.served, slices.Min(o.limits), slices.Max(o.limits), med(o.limits), qsum/qn, o.quantile(.99), u.quantile(.99))
	if m := med(o.limits); m > 5 {
		t.Errorf("limit's median %d for a service of 4: want at most 5", m)
	}
	if p99 := o.quantile(.99); p99 > 2*u.quantile(.99) {
		t.Errorf("p99 of the calls served %v: want at most twice the unloaded %v", p99, u.quantile(.99))
	}
}

// TestReviewTypicalIsTheMean: decision 174's typical latency is meant to
// be the service's mean when nothing queues. A window ends when enough
// of its calls have come back, so its mean is of the calls that came
// back first (the short ones): learned over 10 s at a quarter of the
// capacity, with no queue at all, typical is well under the calls' mean
// (uniform 40-160 ms, mean 100: about 87 ms; exponential, mean 100 ms:
// about 80 ms). Held against it, a window's mean and single calls read
// as a queue (the tests above). Expected: within 5% of the mean.
func TestReviewTypicalIsTheMean(t *testing.T) {
	for name, work := range map[string]func(*rand.Rand) time.Duration{
		"uniform": func(r *rand.Rand) time.Duration { return uniformWork(r, 100*time.Millisecond, 60*time.Millisecond) },
		"exp":     func(r *rand.Rand) time.Duration { return expWork(r, 100*time.Millisecond) },
	} {
		l := newLimiter(t)
		rng := rand.New(rand.NewPCG(1, 2))
		s := &service{servers: 16, work: func(time.Duration) time.Duration { return work(rng) }}
		var sum time.Duration
		n := 0
		s2 := s.work
		s.work = func(now time.Duration) time.Duration { d := s2(now); sum += d; n++; return d }
		o := simulate(t, l, s, phase{rate: 40, dur: 10 * time.Second})[0]
		mean := sum / time.Duration(n)
		t.Logf("%s: calls' mean %v, typical %v, baseline %v, limiting %v, refused %d of %d", name, mean, l.typical, l.baseline, l.limiting, o.refused, o.served+o.refused)
		// The exponential service's limit goes limiting at this load
		// (17% refused) and its typical latency stops learning, 23%
		// under the mean: not yet met, logged above.
		if d := math.Abs(float64(l.typical-mean)) / float64(mean); name == "uniform" && d > 0.05 {
			t.Errorf("%s: typical %v, the calls' mean %v: want within 5%%", name, l.typical, mean)
		}
	}
}

func med(x []int) int { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
