package loadgen

import (
	"testing"
	"time"
)

// TestMergeWeighsByCount: a worker that made nine times the calls weighs
// nine times as much in the merged percentiles, even when both kept the
// same number of samples.
func TestMergeWeighsByCount(t *testing.T) {
	a := &Recorder{MaxSamples: 100}
	b := &Recorder{MaxSamples: 100}
	for range 1000 {
		a.Record(time.Millisecond)
	}
	for range 9000 {
		b.Record(9 * time.Millisecond)
	}
	m := &Recorder{MaxSamples: 100}
	m.Merge(a)
	m.Merge(b)
	if m.Count() != 10000 {
		t.Fatalf("count %d", m.Count())
	}
	// 10% of calls took 1 ms: p50 and p20 are 9 ms, p5 is 1 ms.
	if p := m.Percentile(0.2); p != 9*time.Millisecond {
		t.Errorf("p20 = %v, want 9ms (the merge weighed samples, not calls)", p)
	}
	if p := m.Percentile(0.02); p != time.Millisecond {
		t.Errorf("p2 = %v, want 1ms", p)
	}
}
