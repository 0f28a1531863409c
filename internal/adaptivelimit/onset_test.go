package adaptivelimit

import (
	"testing"
	"time"
)

// TestOnsetQueuesOnce: the service (4 calls at a time, 100 ms
// each) at 10 times its capacity from a calm start. The slow start's
// step that passes the capacity queues one call at the service; the
// round after it begins before that call has come back, and used to
// queue another (the step's new place refilled), and the slow start
// ended only on a second call that queued. Now a step's new places are
// let in again only once its round has come back, and a small round
// ends its slow start on one call that queued: in the overload's first
// two seconds at most one call waits at the service (over 1.5 times
// its latency).
func TestOnsetQueuesOnce(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 4, work: fixed(100 * time.Millisecond)}
	out := simulate(t, l, s,
		phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 400, dur: 2 * time.Second})
	waited := 0
	for _, d := range out[1].latencies {
		if d > 150*time.Millisecond {
			waited++
		}
	}
	t.Logf("onset: served %d, %d waited at the service, max %v", out[1].served, waited, out[1].quantile(1))
	// The service serves 80 calls in 2 s: a limiter that let in few
	// would keep the queue empty by serving no one.
	if out[1].served < 40 {
		t.Errorf("served %d calls in the overload's first 2 s: want at least half the service's 80", out[1].served)
	}
	if waited > 1 {
		t.Errorf("%d calls waited at the service in the overload's first 2 s: want at most 1", waited)
	}
}
