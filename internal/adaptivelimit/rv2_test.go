package adaptivelimit

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// rv2Window ends one window on l whose every call took lat (a fixed-latency
// service: each call waited lat - 100 ms), and nothing was held back.
func rv2Window(l *Limiter, now time.Time, lat time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n, l.sum, l.least = 10, 10*lat, lat
	l.done, l.doneSum = 10, 10*lat
	l.update(now)
}

func rv2Limiter(t *testing.T) *Limiter {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	l.baseline, l.typical = 100*time.Millisecond, 100*time.Millisecond
	l.exact = 64
	l.limit.Store(64)
	return l
}

// TestRv2LeastDevLearnsFromQueuedWindows: a fixed-latency service (every
// call 100 ms, no spread: leastDev 0) whose every call waits 20 ms for a
// few windows: least 120 ms, inside the hold band (not over 1.25x), which
// the baseline does not learn (queueing at 1.1x) — but leastDev does
// (limiter.go:575, before the queueing check at :576). Then every call
// waits 45 ms (least 145 ms, 1.45x the baseline): before, a queue
// (limiting); now it needs 4 x leastDev (~72 ms) more, and the mean
// (145 < 1.5 x 100) does not say it either. Expected: limiting, as on a
// limiter that did not see the 120 ms windows.
func TestRv2LeastDevLearnsFromQueuedWindows(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	fresh := rv2Limiter(t)
	rv2Window(fresh, now, 145*time.Millisecond)
	if !fresh.limiting {
		t.Fatalf("control: a least of 145 ms over a baseline of 100 ms did not start limiting")
	}
	l := rv2Limiter(t)
	for i := 0; i < 8; i++ {
		now = now.Add(200 * time.Millisecond)
		rv2Window(l, now, 120*time.Millisecond)
	}
	t.Logf("after 8 windows of least 120 ms: baseline %v, leastDev %v, limiting %v", l.baseline, l.leastDev, l.limiting)
	now = now.Add(200 * time.Millisecond)
	rv2Window(l, now, 145*time.Millisecond)
	if !l.limiting {
		t.Errorf("every call waited 45 ms (least 145 ms, baseline %v) and no queue was seen: leastDev %v was learned from windows the baseline judged queueing", l.baseline, l.leastDev)
	}
}

// TestRv2RegularMatchesDoc: a probe is made for a service whose least
// latency is at least three quarters of its typical one (doc.go; the
// review found the doc saying "typical within a quarter of its least",
// which the code never did).
func TestRv2RegularMatchesDoc(t *testing.T) {
	l := rv2Limiter(t)
	for typical, want := range map[time.Duration]bool{130 * time.Millisecond: true, 133 * time.Millisecond: true, 134 * time.Millisecond: false, 200 * time.Millisecond: false} {
		l.baseline, l.typical = 100*time.Millisecond, typical
		if got := l.regular(); got != want {
			t.Errorf("regular() with least %v and typical %v = %v, want %v", l.baseline, l.typical, got, want)
		}
	}
}

// TestRv2ProbeClaimErasedAcrossWindow: take() claims the probe's place by
// CompareAndSwap and, if its inflight CAS then fails, stores probeUsed
// false (limiter.go:271-273). If update() opened a new window's probe
// between the two (probeUsed reset, :599) and another call claimed that
// place and got in, the store erases the new window's claim: the probe's
// place is let in again in the same window after any release. Expected:
// a call admitted at the new window's probe place leaves probeUsed true.
func TestRv2ProbeClaimErasedAcrossWindow(t *testing.T) {
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	const lim = 5
	for i := 0; i < 200000; i++ {
		l.limit.Store(lim)
		l.inflight.Store(lim - 1)
		l.probeFrom.Store(0)
		l.probeGen.Add(1)
		l.probe.Store(true)
		var wg sync.WaitGroup
		var t2 bool
		wg.Add(1)
		go func() { // update's new window, then a call at its probe place
			defer wg.Done()
			runtime.Gosched()
			l.probe.Store(false)
			l.probeGen.Add(1)
			l.probe.Store(true)
			t2 = l.take()
		}()
		l.take() // a call at the last window's probe place
		wg.Wait()
		if t2 && l.probeClaim.Load() != l.probeGen.Load() {
			t.Fatalf("iteration %d: the new window's probe call got in and its claim is gone: its place opens again", i)
		}
	}
}

// TestRv2OnsetRuleMatchesDoc: a probing window's single call counts as
// queued when over Tolerance (1.5) times the typical latency, by more
// than Slack, and by more than twice the calls' spread (typical over
// least), as doc.go says (the review found the last condition missing
// there): with least 60 ms and typical 100 ms, a call of 170 ms does not
// count, one of 190 ms does.
func TestRv2OnsetRuleMatchesDoc(t *testing.T) {
	for lat, want := range map[time.Duration]bool{170 * time.Millisecond: false, 190 * time.Millisecond: true} {
		l := rv2Limiter(t)
		l.baseline, l.typical = 60*time.Millisecond, 100*time.Millisecond
		l.round = 4
		start := time.Unix(1_000_000, 0)
		l.start = start
		l.inflight.Add(1)
		l.release(start, start.Add(lat))
		if got := l.over > 0 || l.limiting; got != want {
			t.Errorf("a call of %v with least 60 ms and typical 100 ms counted as queued: %v, want %v", lat, got, want)
		}
	}
}
