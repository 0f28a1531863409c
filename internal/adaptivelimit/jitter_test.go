package adaptivelimit

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestJitteryServiceKeepsItsThroughput: the service (4 calls at
// a time, 100 ms each on average) whose calls vary by up to 10, 30 and
// 60 ms either way, at 10 times its capacity, then given twice its
// servers. The limiter must not read the calls' own spread as a queue:
// overloaded, the service serves at least 80% of its capacity with the
// p99 of the calls served within twice the unloaded p99, and the new
// servers are found. When a window's mean was held against the least
// latency (a calm service's mean is its least), a spread of 30 ms held
// the limit at 1 and the service served a quarter of its capacity.
func TestJitteryServiceKeepsItsThroughput(t *testing.T) {
	for _, spread := range []time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond} {
		t.Run(fmt.Sprint(spread), func(t *testing.T) {
			l := newLimiter(t)
			rng := rand.New(rand.NewPCG(1, 2))
			s := doubling(4, 35*time.Second, func() time.Duration {
				return 100*time.Millisecond - spread + time.Duration(rng.Int64N(int64(2*spread)))
			})
			out := simulate(t, l, s,
				phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
				phase{rate: 400, dur: 30 * time.Second, settle: 5 * time.Second},
				phase{rate: 400, dur: 25 * time.Second, settle: 15 * time.Second})
			unloaded, over, more := out[0], out[1], out[2]
			t.Logf("unloaded p99 %v; overload: served %d refused %d p99 %v limits %d..%d; more servers: served %d in 10 s",
				unloaded.quantile(.99), over.served, over.refused, over.quantile(.99),
				slices.Min(over.limits), slices.Max(over.limits), more.served)
			if want := int(0.8 * 40 * 25); over.served < want {
				t.Errorf("overloaded, served %d calls in 25 s: want at least %d (80%% of capacity)", over.served, want)
			}
			if p99 := over.quantile(.99); p99 > 2*unloaded.quantile(.99) {
				t.Errorf("overloaded, p99 of the calls served %v: want at most twice the unloaded p99 %v", p99, unloaded.quantile(.99))
			}
			if want := int(0.8 * 80 * 10); more.served < want {
				t.Errorf("given twice its servers, served %d calls in 10 s: want at least %d", more.served, want)
			}
		})
	}
}

// TestProbeCostsOneCall: the service (4 calls at a time, 100 ms
// each) at 10 times its capacity for a minute. Each time the limit rises
// past the service's concurrency (the slow start's last step, then the
// headroom's probes for more capacity) one call is let in over it, and
// when it shows the queue the limit falls back at once; and a probe's
// place opens three quarters of a call after the rise, when the calls
// ahead of it (which end in step) are nearly done. So only the slow
// start's step makes a call wait more than half a call at the service
// in the minute. When a probe's place was open for a whole window, each
// probe let in one call a round over the capacity, and 25 calls waited
// a whole call for 8 rises.
func TestProbeCostsOneCall(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 4, work: fixed(100 * time.Millisecond)}
	out := simulate(t, l, s,
		phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 400, dur: 60 * time.Second})
	over := out[1]
	rises := 0
	for i := 1; i < len(over.limits); i++ {
		if over.limits[i] > 4 && over.limits[i-1] <= 4 {
			rises++
		}
	}
	waited := 0
	for _, d := range over.latencies {
		if d > 150*time.Millisecond {
			waited++
		}
	}
	t.Logf("served %d, %d rises past the capacity, %d calls waited over half a call at the service", over.served, rises, waited)
	if rises < 3 {
		t.Fatalf("the limit rose past the service's concurrency %d times: want the slow start's step and probes after it", rises)
	}
	if waited > 1 {
		t.Errorf("%d calls waited over half a call at the service for %d rises of the limit past its concurrency: want only the slow start's step", waited, rises)
	}
	if want := int(0.9 * 40 * 60); over.served < want {
		t.Errorf("served %d calls in 60 s: want at least %d (90%% of capacity)", over.served, want)
	}
}
