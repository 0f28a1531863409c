package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var r Recorder
	// 1..1000 ms, recorded out of order.
	for i := 1000; i >= 1; i-- {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"p0", 0, 1 * time.Millisecond},
		{"p50", 0.5, 500 * time.Millisecond},
		{"p90", 0.9, 900 * time.Millisecond},
		{"p99", 0.99, 990 * time.Millisecond},
		{"p99.9", 0.999, 999 * time.Millisecond},
		{"p100", 1, 1000 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Percentile(tt.q); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if r.Count() != 1000 || r.Max() != time.Second || r.Mean() != 500500*time.Microsecond {
		t.Errorf("count %d max %v mean %v", r.Count(), r.Max(), r.Mean())
	}
}

func TestPercentileEmptyAndSmall(t *testing.T) {
	var r Recorder
	if r.Percentile(0.99) != 0 || r.Mean() != 0 {
		t.Fatal("empty recorder: want zeros")
	}
	r.Record(7 * time.Millisecond)
	for _, q := range []float64{0, 0.5, 0.999, 1} {
		if got := r.Percentile(q); got != 7*time.Millisecond {
			t.Errorf("one sample: Percentile(%v) = %v", q, got)
		}
	}
}

func TestRecorderBoundedKeepsShape(t *testing.T) {
	r := Recorder{MaxSamples: 1000}
	// 100,000 samples uniform over 0..99,999 µs: p50 near 50 ms.
	for i := range 100000 {
		r.Record(time.Duration((i*7919)%100000) * time.Microsecond)
	}
	if len(r.samples) != 1000 || r.Count() != 100000 {
		t.Fatalf("kept %d of %d", len(r.samples), r.Count())
	}
	if p := r.Percentile(0.5); p < 40*time.Millisecond || p > 60*time.Millisecond {
		t.Errorf("p50 of a bounded uniform sample = %v, want about 50ms", p)
	}
}

func TestMerge(t *testing.T) {
	var a, b Recorder
	for i := 1; i <= 50; i++ {
		a.Record(time.Duration(i))
		b.Record(time.Duration(50 + i))
	}
	a.Merge(&b)
	if a.Count() != 100 || a.Max() != 100 || a.Percentile(0.5) != 50 {
		t.Errorf("merged: count %d max %v p50 %v", a.Count(), a.Max(), a.Percentile(0.5))
	}
}

func TestClosedMaxCallsAndErrors(t *testing.T) {
	var n atomic.Int64
	res, err := Closed(context.Background(), ClosedConfig{Workers: 4, Duration: 10 * time.Second, MaxCalls: 100},
		func(context.Context) error {
			if n.Add(1)%10 == 0 {
				return errors.New("every tenth fails")
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 90 || res.Errors != 10 || res.FirstError == nil {
		t.Errorf("calls %d errors %d first %v; want 90, 10, an error", res.Calls, res.Errors, res.FirstError)
	}
	if res.Latency.Count() != 90 {
		t.Errorf("recorded %d latencies, want 90", res.Latency.Count())
	}
}

func TestClosedBoundedByTime(t *testing.T) {
	start := time.Now()
	res, err := Closed(context.Background(), ClosedConfig{Workers: 2, Duration: 100 * time.Millisecond},
		func(context.Context) error { time.Sleep(time.Millisecond); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a 100ms run took %v", took)
	}
	if res.Calls == 0 || res.Throughput() <= 0 {
		t.Errorf("no calls measured: %+v", res)
	}
}

// A target that takes 10ms per call, behind one worker, cannot keep up with
// 1,000 calls/s: call i is due at i ms but starts near i*10 ms, so the open
// loop must report latencies far above the 10ms service time. A closed loop
// (or an open loop measuring from the actual send) would report about 10ms.
func TestOpenMeasuresFromIntendedTime(t *testing.T) {
	res, err := Open(context.Background(), OpenConfig{Rate: 1000, Duration: 50 * time.Millisecond, Workers: 1, Drain: 5 * time.Second},
		func(context.Context) error { time.Sleep(10 * time.Millisecond); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 50 || res.Missed != 0 {
		t.Fatalf("calls %d missed %d, want 50 and 0", res.Calls, res.Missed)
	}
	// The last call is due at 49ms and starts after 49 earlier calls of
	// 10ms each: about 490ms - 49ms of queueing plus its own 10ms.
	if m := res.Latency.Max(); m < 300*time.Millisecond {
		t.Errorf("max latency %v: the queueing delay is not measured", m)
	}
	if p50 := res.Latency.Percentile(0.5); p50 < 100*time.Millisecond {
		t.Errorf("p50 %v: want the queueing delay of a target at a tenth of the rate", p50)
	}
}

func TestOpenPacesCalls(t *testing.T) {
	var n atomic.Int64
	start := time.Now()
	res, err := Open(context.Background(), OpenConfig{Rate: 200, Duration: 100 * time.Millisecond, Drain: 5 * time.Second},
		func(context.Context) error { n.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls != 20 || n.Load() != 20 {
		t.Errorf("calls %d (target saw %d), want 20", res.Calls, n.Load())
	}
	// The last call is due at 95ms: the run cannot end before it.
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Errorf("20 calls at 200/s took %v: not paced", took)
	}
}

func TestOpenBoundedByTime(t *testing.T) {
	start := time.Now()
	res, err := Open(context.Background(), OpenConfig{Rate: 1000, Duration: 100 * time.Millisecond, Drain: 100 * time.Millisecond, Workers: 2},
		func(ctx context.Context) error {
			select {
			case <-time.After(time.Minute):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a run bounded at 200ms took %v", took)
	}
	// Each worker starts one call, stuck until the run ends; the other 98 (or
	// more, if a worker was not even scheduled in time) are missed.
	if res.Calls != 0 || res.Errors != 100 || res.Missed < 98 {
		t.Errorf("calls %d errors %d missed %d; want 0, 100, at least 98", res.Calls, res.Errors, res.Missed)
	}
}

func TestBadConfig(t *testing.T) {
	ok := func(context.Context) error { return nil }
	if _, err := Closed(context.Background(), ClosedConfig{}, ok); !errors.Is(err, ErrConfig) {
		t.Errorf("Closed without duration: %v", err)
	}
	if _, err := Open(context.Background(), OpenConfig{Duration: time.Second}, ok); !errors.Is(err, ErrConfig) {
		t.Errorf("Open without rate: %v", err)
	}
}
