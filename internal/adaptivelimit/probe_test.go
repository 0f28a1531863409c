package adaptivelimit

import (
	"slices"
	"testing"
	"time"
)

// TestProbesAreRare: a service that serves 4 calls at a time, 100 ms
// each, under a sustained load of 10 times that. The limit settles at
// the service's concurrency; a call let in over it (the headroom that
// finds a service that got faster) waits at the service for a place.
// Probes that keep finding no more capacity come less and less often, so
// once the overload has settled under 2% of the calls served wait there
// and the p99 of those served is within 1.2 times the service's latency
// (probing every fourth window, 8% waited, and the p99 was 190 ms).
func TestProbesAreRare(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 4, work: fixed(100 * time.Millisecond)}
	out := simulate(t, l, s,
		phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 400, dur: 60 * time.Second, settle: 3 * time.Second})
	over := out[1]
	waited := 0
	for _, d := range over.latencies {
		if d > 150*time.Millisecond {
			waited++
		}
	}
	t.Logf("served %d refused %d, %d waited at the service, p99 %v max %v, limits %d..%d", over.served, over.refused,
		waited, over.quantile(.99), over.quantile(1), slices.Min(over.limits), slices.Max(over.limits))
	// 57 s measured at the service's 40 a second: a limiter that let in
	// few would keep the queue empty by serving no one.
	if over.served < 40*57/2 {
		t.Errorf("served %d calls in 57 s: want at least half the service's %d", over.served, 40*57)
	}
	if waited*50 > over.served {
		t.Errorf("%d of %d calls served waited at the service: want under 2%%", waited, over.served)
	}
	if p99 := over.quantile(.99); p99 > 120*time.Millisecond {
		t.Errorf("p99 of the calls served %v: want at most 1.2 times the service's 100 ms", p99)
	}
	if max := over.quantile(1); max > 200*time.Millisecond {
		t.Errorf("a call served took %v: want at most twice the service's 100 ms", max)
	}
}

// TestMoreCapacityIsFound: the same service, overloaded, gets twice its
// servers (8 calls at a time, 80 a second) and keeps them: however rare
// its probes past 4 have become, the limit finds the new capacity, and
// the service serves at least 80% of it in the last 10 s of 25.
func TestMoreCapacityIsFound(t *testing.T) {
	l := newLimiter(t)
	s := doubling(4, 35*time.Second, func() time.Duration { return 100 * time.Millisecond })
	out := simulate(t, l, s,
		phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 400, dur: 30 * time.Second},
		phase{rate: 400, dur: 25 * time.Second, settle: 15 * time.Second})
	more := out[2]
	t.Logf("more servers: served %d refused %d in 10 s, p99 %v, limits %d..%d", more.served, more.refused,
		more.quantile(.99), slices.Min(more.limits), slices.Max(more.limits))
	if want := int(0.8 * 80 * 10); more.served < want {
		t.Errorf("served %d calls in 10 s of a service that serves 80 a second: want at least %d", more.served, want)
	}
}
