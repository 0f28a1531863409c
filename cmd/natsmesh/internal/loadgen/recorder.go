package loadgen

import (
	"math"
	"slices"
	"time"
)

// DefaultMaxSamples bounds the latencies a Recorder keeps: at 8 bytes each,
// 4 Mi samples are 32 MiB, several minutes of load at 10,000 calls/s.
const DefaultMaxSamples = 4 << 20

// Recorder collects latencies. Past its bound it keeps counting (Count,
// Max) but replaces kept samples at random (reservoir sampling), so the
// percentiles stay those of the whole run. The zero value is ready to use,
// with DefaultMaxSamples. A Recorder is not safe for concurrent use: give
// each worker its own and Merge them.
type Recorder struct {
	// MaxSamples bounds the samples kept. Zero means DefaultMaxSamples.
	MaxSamples int

	samples []time.Duration
	count   int64
	sum     time.Duration
	max     time.Duration
	sorted  bool
	rng     uint64 // xorshift state for reservoir sampling
}

func (r *Recorder) limit() int {
	if r.MaxSamples > 0 {
		return r.MaxSamples
	}
	return DefaultMaxSamples
}

// Record adds one latency.
func (r *Recorder) Record(d time.Duration) {
	r.count++
	r.sum += d
	if d > r.max {
		r.max = d
	}
	r.sorted = false
	if len(r.samples) < r.limit() {
		r.samples = append(r.samples, d)
		return
	}
	// Algorithm R: keep the new sample with probability limit/count.
	if j := r.rand() % uint64(r.count); j < uint64(len(r.samples)) {
		r.samples[j] = d
	}
}

func (r *Recorder) rand() uint64 {
	if r.rng == 0 {
		r.rng = 0x9e3779b97f4a7c15
	}
	r.rng ^= r.rng << 13
	r.rng ^= r.rng >> 7
	r.rng ^= r.rng << 17
	return r.rng
}

// Merge adds o's samples and counts to r. When everything fits, the samples
// are simply joined; otherwise each side's samples stand for its count of
// calls, so the merged reservoir draws from the two in proportion to their
// counts, not to how many samples each kept.
func (r *Recorder) Merge(o *Recorder) {
	if o.count == 0 {
		return
	}
	exact := int64(len(r.samples)) == r.count && int64(len(o.samples)) == o.count
	if exact && len(r.samples)+len(o.samples) <= r.limit() {
		r.samples = append(r.samples, o.samples...)
	} else {
		a, b := r.shuffled(r.samples), r.shuffled(o.samples)
		k := min(r.limit(), len(a)+len(b))
		out := make([]time.Duration, 0, k)
		pa := float64(r.count) / float64(r.count+o.count)
		for len(out) < k {
			if len(b) == 0 || (len(a) > 0 && float64(r.rand()>>11)/(1<<53) < pa) {
				out, a = append(out, a[len(a)-1]), a[:len(a)-1]
			} else {
				out, b = append(out, b[len(b)-1]), b[:len(b)-1]
			}
		}
		r.samples = out
	}
	r.count += o.count
	r.sum += o.sum
	r.max = max(r.max, o.max)
	r.sorted = false
}

// shuffled returns a shuffled copy of s (Fisher-Yates).
func (r *Recorder) shuffled(s []time.Duration) []time.Duration {
	c := slices.Clone(s)
	for i := len(c) - 1; i > 0; i-- {
		j := r.rand() % uint64(i+1)
		c[i], c[j] = c[j], c[i]
	}
	return c
}

// Count returns how many latencies were recorded.
func (r *Recorder) Count() int64 { return r.count }

// Max returns the largest latency recorded.
func (r *Recorder) Max() time.Duration { return r.max }

// Mean returns the mean latency, zero when none was recorded.
func (r *Recorder) Mean() time.Duration {
	if r.count == 0 {
		return 0
	}
	return r.sum / time.Duration(r.count)
}

// Percentile returns the latency at or below which a fraction q (0 to 1) of
// the samples lie, by the nearest-rank method: Percentile(0.5) of 1..100 ms
// is 50 ms, Percentile(0.999) of them 100 ms. It is zero with no samples.
func (r *Recorder) Percentile(q float64) time.Duration {
	n := len(r.samples)
	if n == 0 {
		return 0
	}
	if !r.sorted {
		slices.Sort(r.samples)
		r.sorted = true
	}
	rank := int(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	return r.samples[rank-1]
}
