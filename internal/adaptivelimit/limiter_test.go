package adaptivelimit

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// service is a simulated local service in virtual time: servers calls at
// once, each taking work(), and a FIFO queue of the rest, which is what a
// service that has reached its capacity does with more (a thread pool, a
// database's connection pool).
type service struct {
	servers int
	work    func(now time.Duration) time.Duration
	busy    int
	queue   []done // admitted and arrived times
	// maxQueue is the most calls that waited at once.
	maxQueue int
	done     doneHeap
}

type done struct{ at, admitted, arrived time.Duration }

type doneHeap []done

func (h doneHeap) Len() int           { return len(h) }
func (h doneHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h doneHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *doneHeap) Push(x any)        { *h = append(*h, x.(done)) }
func (h *doneHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *service) admit(now, arrived time.Duration) {
	if s.busy < s.servers {
		s.busy++
		heap.Push(&s.done, done{at: now + s.work(now), admitted: now, arrived: arrived})
		return
	}
	s.queue = append(s.queue, done{admitted: now, arrived: arrived})
	s.maxQueue = max(s.maxQueue, len(s.queue))
}

// phase is a stretch of the simulation at one arrival rate, measured
// over the calls that arrive after its first settle.
type phase struct {
	rate   float64 // calls per second, evenly spaced
	dur    time.Duration
	settle time.Duration
}

// outcome is what the calls that arrived in one phase got.
type outcome struct {
	served, refused int
	latencies       []time.Duration
	limits          []int // the limit at each arrival
}

func (o *outcome) quantile(q float64) time.Duration {
	if len(o.latencies) == 0 {
		return 0
	}
	s := slices.Clone(o.latencies)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// simulate runs s behind l through the phases in virtual time. A call
// the limit holds back waits for a place as the dispatch makes it
// ([Limiter.MayWait], last come first served, up to its wait), and its
// latency counts from its arrival.
func simulate(t *testing.T, l *Limiter, s *service, phases ...phase) []outcome {
	t.Helper()
	origin := time.Unix(1_000_000, 0)
	var now time.Duration
	l.clock = func() time.Time { return origin.Add(now) }
	l.start = origin
	out := make([]outcome, len(phases))
	// phaseOf maps an arrival time to its phase's outcome, or nil
	// while the phase is settling.
	type span struct{ from, measureFrom, to time.Duration }
	var spans []span
	var end time.Duration
	for _, p := range phases {
		spans = append(spans, span{end, end + p.settle, end + p.dur})
		end += p.dur
	}
	phaseOf := func(at time.Duration) *outcome {
		for i, sp := range spans {
			if at >= sp.measureFrom && at < sp.to {
				return &out[i]
			}
		}
		return nil
	}
	type waiter struct{ arrived, until time.Duration }
	var waiting []waiter
	// admitWaiting turns away the calls whose wait is over, or all of
	// them once no call may wait, and gives the free places to the
	// others, the one that waited least first (Limiter.wake).
	admitWaiting := func() {
		live := waiting[:0]
		for _, w := range waiting {
			if l.closed.Load() || w.until < now {
				if o := phaseOf(w.arrived); o != nil {
					o.refused++
				}
				continue
			}
			live = append(live, w)
		}
		waiting = live
		for len(waiting) > 0 && l.take() {
			s.admit(now, waiting[len(waiting)-1].arrived)
			waiting = waiting[:len(waiting)-1]
		}
		l.nwait.Store(int64(len(waiting)))
	}
	complete := func(until time.Duration) {
		for s.done.Len() > 0 && s.done[0].at <= until {
			d := heap.Pop(&s.done).(done)
			now = d.at
			admitWaiting() // those whose wait ended before
			l.inflight.Add(-1)
			l.sample(origin.Add(d.admitted), origin.Add(d.at))
			if o := phaseOf(d.arrived); o != nil {
				o.served++
				o.latencies = append(o.latencies, d.at-d.arrived)
			}
			s.busy--
			if len(s.queue) > 0 {
				next := s.queue[0]
				s.queue = s.queue[1:]
				s.busy++
				heap.Push(&s.done, done{at: d.at + s.work(d.at), admitted: next.admitted, arrived: next.arrived})
			}
			admitWaiting()
		}
	}
	for i, p := range phases {
		step := time.Duration(float64(time.Second) / p.rate)
		for at := spans[i].from; at < spans[i].to; at += step {
			complete(at)
			now = at
			admitWaiting()
			o := phaseOf(at)
			if o != nil {
				o.limits = append(o.limits, l.Limit())
			}
			switch {
			case len(waiting) == 0 && l.TryAcquire():
				s.admit(at, at)
			case l.MayWait():
				l.held()
				waiting = append(waiting, waiter{at, at + time.Duration(l.waitFor.Load())})
				l.nwait.Add(1)
			default:
				if len(waiting) > 0 {
					l.held()
				}
				if o != nil {
					o.refused++
				}
			}
		}
	}
	complete(end + time.Hour)
	now = end + 2*time.Hour
	admitWaiting()
	return out
}

// doubling is a service of servers calls at a time, each taking work(),
// that gets twice the servers from at on (the tests that a limit finds
// capacity that grew).
func doubling(servers int, at time.Duration, work func() time.Duration) *service {
	s := &service{servers: servers}
	s.work = func(now time.Duration) time.Duration {
		if now >= at {
			s.servers = 2 * servers
		}
		return work()
	}
	return s
}

func fixed(d time.Duration) func(time.Duration) time.Duration {
	return func(time.Duration) time.Duration { return d }
}

func newLimiter(t *testing.T) *Limiter {
	t.Helper()
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestOverloadShedsBeforeQueueing: services of several capacities (4
// calls at a time, 25 ms each: 160 a second; the 40 a second) at
// 10 times their capacity. Unlimited, their queue grows with every second
// of the overload. Behind the limiter, from 5 s into the overload on, the
// calls served wait at most about once more than their work, the rest
// are refused, the service stays busy, and once the overload ends every
// call is served again at once. (The onset: TestOnsetQueuesLittle.)
func TestOverloadShedsBeforeQueueing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers int
		work    time.Duration
	}{
		{"4x25ms", 4, 25 * time.Millisecond},
		{"2x50ms", 2, 50 * time.Millisecond},
		{"1x10ms", 1, 10 * time.Millisecond},
		{"32x20ms", 32, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t)
			s := &service{servers: tc.servers, work: fixed(tc.work)}
			capacity := float64(tc.servers) * float64(time.Second) / float64(tc.work)
			out := simulate(t, l, s,
				phase{rate: capacity / 4, dur: 3 * time.Second, settle: time.Second}, // past the first windows
				phase{rate: 10 * capacity, dur: 20 * time.Second, settle: 5 * time.Second},
				phase{rate: capacity / 4, dur: 3 * time.Second, settle: time.Second}) // recovered within a second
			unloaded, over, after := out[0], out[1], out[2]
			t.Logf("unloaded: p50 %v p99 %v, limit %d", unloaded.quantile(.5), unloaded.quantile(.99), l.Limit())
			t.Logf("overload: served %d refused %d, p50 %v p99 %v, limits %d..%d", over.served, over.refused,
				over.quantile(.5), over.quantile(.99), slices.Min(over.limits), slices.Max(over.limits))
			t.Logf("after: served %d refused %d, p99 %v; most queued at the service %d", after.served, after.refused,
				after.quantile(.99), s.maxQueue)
			if unloaded.refused > 0 || after.refused > 0 {
				t.Errorf("refused %d calls before the overload and %d after it", unloaded.refused, after.refused)
			}
			if p99 := after.quantile(.99); p99 > 2*unloaded.quantile(.99) {
				t.Errorf("after the overload, p99 %v: want at most twice the unloaded p99 %v (no queue left)", p99, unloaded.quantile(.99))
			}
			if p99 := over.quantile(.99); p99 > 2*unloaded.quantile(.99) {
				t.Errorf("overloaded, p99 of the calls served %v: want at most twice the unloaded p99 %v", p99, unloaded.quantile(.99))
			}
			// Throughput: the service is kept busy, not starved.
			if want := int(0.8 * capacity * 15); over.served < want {
				t.Errorf("overloaded, served %d calls in 15 s: want at least %d (80%% of capacity)", over.served, want)
			}
		})
	}
}

// TestOnsetQueuesLittle: the case (a service that serves 4 calls
// at a time, 100 ms each, 40 a second) at 10 times its capacity, measured
// from the overload's first call: the limit, small while the load was,
// grows by a quarter of a round at a time, so the round that finds the
// capacity queues one call at it, and every call served (the onset's
// too) takes at most twice the unloaded p99. With a limit open at 64
// until a queue showed, 60 calls queued at once, and the onset's calls
// waited up to 1.6 s.
func TestOnsetQueuesLittle(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 4, work: fixed(100 * time.Millisecond)}
	out := simulate(t, l, s,
		phase{rate: 10, dur: 5 * time.Second, settle: time.Second},
		phase{rate: 400, dur: 5 * time.Second})
	unloaded, over := out[0], out[1]
	t.Logf("unloaded p99 %v; overload: served %d refused %d, p50 %v p99 %v max %v, limits %d..%d; most queued at the service %d",
		unloaded.quantile(.99), over.served, over.refused, over.quantile(.5), over.quantile(.99), over.quantile(1),
		slices.Min(over.limits), slices.Max(over.limits), s.maxQueue)
	if s.maxQueue > 1 {
		t.Errorf("up to %d calls queued at the service: want at most 1 (a quarter of its concurrency)", s.maxQueue)
	}
	if p99 := over.quantile(.99); p99 > 2*unloaded.quantile(.99) {
		t.Errorf("overloaded from its onset, p99 of the calls served %v: want at most twice the unloaded p99 %v", p99, unloaded.quantile(.99))
	}
	if want := int(0.8 * 40 * 5); over.served < want {
		t.Errorf("served %d calls in 5 s: want at least %d (80%% of capacity)", over.served, want)
	}
}

// TestColdStartUnderLoad: an instance that starts while its service is
// busy (100 calls at a time, 20 ms each, at 80% of that, 80 in flight)
// refuses under 1% of the calls: the limit is open until its first
// window, then twice the calls in flight.
func TestColdStartUnderLoad(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 100, work: fixed(20 * time.Millisecond)}
	out := simulate(t, l, s, phase{rate: 4000, dur: 10 * time.Second})
	o := out[0]
	t.Logf("served %d refused %d, p99 %v, limits %d..%d", o.served, o.refused, o.quantile(.99),
		slices.Min(o.limits), slices.Max(o.limits))
	if o.refused > o.served/100 {
		t.Errorf("refused %d of %d calls: want under 1%%", o.refused, o.served+o.refused)
	}
}

// TestNoRefusalsBelowCapacity: a service whose latency varies widely from
// call to call (exponential, mean 20 ms, 50 servers) at 60% of its
// capacity is never throttled for long: the limiter must not read the
// variance as queueing.
func TestNoRefusalsBelowCapacity(t *testing.T) {
	l := newLimiter(t)
	rng := rand.New(rand.NewPCG(1, 2))
	s := &service{servers: 50, work: func(time.Duration) time.Duration {
		return time.Duration(rng.ExpFloat64() * float64(20*time.Millisecond))
	}}
	out := simulate(t, l, s, phase{rate: 1500, dur: 30 * time.Second, settle: 2 * time.Second})
	o := out[0]
	t.Logf("served %d refused %d, p50 %v p99 %v, limits %d..%d", o.served, o.refused, o.quantile(.5), o.quantile(.99),
		slices.Min(o.limits), slices.Max(o.limits))
	if o.refused > o.served/100 {
		t.Errorf("refused %d of %d calls below capacity: want under 1%%", o.refused, o.served+o.refused)
	}
}

// TestSlowerServiceIsFollowed: a service whose every call becomes 4
// times slower at once (a dependency of its own became slow) at a load it
// still serves without queueing: after a transient, the limiter takes the
// new latency as the service's and stops refusing.
func TestSlowerServiceIsFollowed(t *testing.T) {
	l := newLimiter(t)
	s := &service{servers: 100, work: func(now time.Duration) time.Duration {
		if now < 5*time.Second {
			return 10 * time.Millisecond
		}
		return 40 * time.Millisecond
	}}
	out := simulate(t, l, s,
		phase{rate: 500, dur: 5 * time.Second},
		phase{rate: 500, dur: 20 * time.Second, settle: 3 * time.Second})
	o := out[1]
	t.Logf("slower: served %d refused %d, p99 %v, limits %d..%d, limit now %d", o.served, o.refused, o.quantile(.99),
		slices.Min(o.limits), slices.Max(o.limits), l.Limit())
	if o.refused > o.served/100 {
		t.Errorf("refused %d of %d calls once the service settled at its new latency: want under 1%%", o.refused, o.served+o.refused)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"initial over max":  {Initial: 10, Max: 5},
		"initial under min": {Min: 10, Initial: 5},
		"tolerance":         {Tolerance: 1.01},
		"samples":           {MinSamples: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("New(%+v) = %v: want ErrConfig", cfg, err)
			}
		})
	}
}

// TestNoAllocations: admitting and releasing a call, sampled or not,
// allocates nothing (issue 20: the dispatch's cost per call).
func TestNoAllocations(t *testing.T) {
	l := newLimiter(t)
	if n := testing.AllocsPerRun(1000, func() {
		if l.TryAcquire() {
			l.Release(time.Now(), true)
		}
		if l.TryAcquire() {
			l.Release(time.Now(), false)
		}
	}); n != 0 {
		t.Errorf("%v allocations per call: want none", n)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	l, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if l.TryAcquire() {
				l.Release(time.Now(), true)
			}
		}
	})
}

// TestWait: while the service shows no queueing, a call over the limit
// waits for a place and gets the next one freed; it gives up after
// MaxWait; and once a window shows a queue, the calls waiting are turned
// away at once and no call waits any more.
func TestWait(t *testing.T) {
	l, err := New(Config{Max: 2, Initial: 2, MaxWait: time.Minute, MinSamples: 1, Window: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if !l.TryAcquire() || !l.TryAcquire() || l.TryAcquire() {
		t.Fatal("want two places")
	}
	if !l.MayWait() {
		t.Fatal("MayWait false while open")
	}
	got := make(chan bool, 1)
	// waiting returns once a call waits at l (for 10 s at most).
	waiting := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); l.nwait.Load() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no call waits after 10 s")
			}
		}
	}
	go func() { got <- l.Wait() }()
	waiting()
	start := time.Now()
	l.Release(start, false) // frees a place: the waiting call takes it
	if ok := <-got; !ok {
		t.Fatal("the waiting call got no place when one was freed")
	}

	short, err := New(Config{Max: 1, Initial: 1, MaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	short.TryAcquire()
	if short.Wait() {
		t.Fatal("Wait admitted a call with no place free")
	}

	// A queue seen: the limiter sets a baseline, then a window ten times
	// slower closes it.
	for _, d := range []time.Duration{time.Millisecond, time.Second} {
		for l.Inflight() < 2 {
			l.TryAcquire()
		}
		go func() { got <- l.Wait() }()
		waiting()
		l.release(time.Now(), time.Now().Add(d))
		if ok := <-got; d == time.Second && ok {
			t.Fatal("a waiting call was admitted once the limiter saw a queue")
		}
	}
	if l.MayWait() {
		t.Fatal("MayWait true once limiting")
	}
}
