package adaptivelimit

import (
	"slices"
	"testing"
	"time"
)

// TestFastServiceQueueIsSeen: a fast service (16 calls at a time, 2 ms
// each, 8,000 a second) at 10 times its capacity. A single call counts
// as queued only past Slack (50 ms), a queue this service builds only
// at 400 calls, so the slow start grew the limit to its Max (1,024) and
// the calls queued at the service by the hundred (with 64 servers: 960,
// p99 47 ms against 2 ms unloaded). Now a round whose every call waited
// (its least latency past the baseline's band) is judged at once: at
// most 100 calls queue, and the p99 of the calls served stays under
// 15 ms (the limiting state still takes a mean within 5 ms of the
// typical latency for the service's own: 10 ms measured), with the
// service kept busy.
func TestFastServiceQueueIsSeen(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 16, work: fixed(2 * time.Millisecond)}
	out := simulate(t, l, s,
		phase{rate: 2000, dur: 3 * time.Second, settle: time.Second},
		phase{rate: 80000, dur: time.Second})
	unloaded, over := out[0], out[1]
	t.Logf("unloaded p99 %v; overload: served %d, p99 %v, limits %d..%d, most queued at the service %d",
		unloaded.quantile(.99), over.served, over.quantile(.99), slices.Min(over.limits), slices.Max(over.limits), s.maxQueue)
	if p99 := over.quantile(.99); p99 > 15*time.Millisecond {
		t.Errorf("p99 of the calls served %v (unloaded %v): want under 15 ms", p99, unloaded.quantile(.99))
	}
	if s.maxQueue > 100 {
		t.Errorf("up to %d calls queued at the service: want at most 100", s.maxQueue)
	}
	if want := int(0.9 * 8000); over.served < want {
		t.Errorf("served %d calls in 1 s: want at least %d (90%% of capacity)", over.served, want)
	}
}
