package adaptivelimit

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestReviewProbeCostWithSmallJitter (from the review of decisions 173
// and 174): TestProbeCostsOneCall's service with calls of 100 ms ± 5 ms,
// which do not end in step, so a probe's late place waits a random part
// of a call and may wait too little to show. Fixed calls: 1 call waits
// over half a call in the minute; these: 4 to 11 by seed (the limiter
// of decision 172: 7 to 20; with the probe's window taken as proof of
// more room, up to 32). Bound: 12.
func TestReviewProbeCostWithSmallJitter(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		l := newLimiter(t)
		rng := rand.New(rand.NewPCG(seed, 2))
		s := &service{servers: 4, work: func(time.Duration) time.Duration { return uniformWork(rng, 100*time.Millisecond, 5*time.Millisecond) }}
		out := simulate(t, l, s, phase{rate: 10, dur: 5 * time.Second, settle: time.Second}, phase{rate: 400, dur: 60 * time.Second})
		over := out[1]
		waited := 0
		for _, d := range over.latencies {
			if d > 155*time.Millisecond {
				waited++
			}
		}
		t.Logf("±5ms seed %d: served %d, %d waited over half a call, limits %d..%d", seed, over.served, waited, slices.Min(over.limits), slices.Max(over.limits))
		if waited > 12 {
			t.Errorf("seed %d: %d calls waited over half a call at the service in a minute: want at most 12", seed, waited)
		}
	}
}

// TestReviewJitterSeeds: TestJitteryServiceKeepsItsThroughput's
// assertions under seeds 2 to 8 (spreads of 30 and 60 ms). 11 of the 14
// hold (decision 172's limiter: none); in the others the limit does not
// find the doubled servers within the phase. Bound: at most 3 fail.
func TestReviewJitterSeeds(t *testing.T) {
	failed := 0
	for seed := uint64(2); seed <= 8; seed++ {
		for _, spread := range []time.Duration{30 * time.Millisecond, 60 * time.Millisecond} {
			l := newLimiter(t)
			rng := rand.New(rand.NewPCG(seed, 2))
			s := doubling(4, 35*time.Second, func() time.Duration { return uniformWork(rng, 100*time.Millisecond, spread) })
			out := simulate(t, l, s,
				phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
				phase{rate: 400, dur: 30 * time.Second, settle: 5 * time.Second},
				phase{rate: 400, dur: 25 * time.Second, settle: 15 * time.Second})
			u, over, more := out[0], out[1], out[2]
			ok := over.served >= 800 && over.quantile(.99) <= 2*u.quantile(.99) && more.served >= 640
			t.Logf("seed %d spread %v: served %d p99 %v (unl %v), more %d ok=%v", seed, spread, over.served, over.quantile(.99).Round(time.Millisecond), u.quantile(.99).Round(time.Millisecond), more.served, ok)
			if !ok {
				failed++
			}
		}
	}
	if failed > 3 {
		t.Errorf("%d of 14 seeds and spreads fail TestJitteryServiceKeepsItsThroughput's assertions: want at most 3", failed)
	}
}
