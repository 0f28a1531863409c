package meshstat

import (
	"slices"
	"sort"
)

// Quantile estimates the q-quantile (0 < q <= 1) of h in milliseconds, the
// way Prometheus' histogram_quantile does: it finds the bucket holding rank
// q*Total and interpolates linearly inside it, taking 0 as the lower edge of
// the first bucket. A rank in the last bucket (above every bound) gives the
// last bound and over true: the quantile is more than that. ok is false when
// h is empty or has no bounds.
func (h Histogram) Quantile(q float64) (ms float64, over, ok bool) {
	total := h.Total()
	if total == 0 || len(h.BoundsMS) == 0 || len(h.Counts) != len(h.BoundsMS)+1 {
		return 0, false, false
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range h.Counts {
		before := cum
		cum += c
		if float64(cum) < rank || c == 0 {
			continue
		}
		if i == len(h.BoundsMS) {
			return h.BoundsMS[i-1], true, true
		}
		lower := 0.0
		if i > 0 {
			lower = h.BoundsMS[i-1]
		}
		upper := h.BoundsMS[i]
		return lower + (upper-lower)*(rank-float64(before))/float64(c), false, true
	}
	// Only for q > 1: everything is below the rank.
	return h.BoundsMS[len(h.BoundsMS)-1], true, true
}

// Sub returns the counts h gained since prev: h - prev bucket by bucket.
// When the bounds differ or a bucket shrank, the instance restarted its
// counters, and Sub returns h itself.
func (h Histogram) Sub(prev Histogram) Histogram {
	if !slices.Equal(h.BoundsMS, prev.BoundsMS) || len(h.Counts) != len(prev.Counts) {
		return h
	}
	d := Histogram{BoundsMS: h.BoundsMS, Counts: make([]uint64, len(h.Counts))}
	for i, c := range h.Counts {
		if c < prev.Counts[i] {
			return h
		}
		d.Counts[i] = c - prev.Counts[i]
	}
	return d
}

// Merge adds histograms up. Histograms with equal bounds add bucket by
// bucket; otherwise the result has the union of all bounds, and each
// bucket's count goes to the result's bucket that ends at the same upper
// bound (the last buckets to the last), which keeps every value at or
// below its recorded bound. Histograms without bounds add to the overflow
// bucket only.
func Merge(hs ...Histogram) Histogram {
	var bounds []float64
	same := true
	for i, h := range hs {
		if i > 0 && !slices.Equal(h.BoundsMS, hs[0].BoundsMS) {
			same = false
		}
		bounds = append(bounds, h.BoundsMS...)
	}
	if len(hs) > 0 && same {
		bounds = slices.Clone(hs[0].BoundsMS)
	} else {
		sort.Float64s(bounds)
		bounds = slices.Compact(bounds)
	}
	out := Histogram{BoundsMS: bounds, Counts: make([]uint64, len(bounds)+1)}
	for _, h := range hs {
		for i, c := range h.Counts {
			j := len(bounds) // above every bound
			if i < len(h.BoundsMS) {
				j, _ = slices.BinarySearch(bounds, h.BoundsMS[i])
			}
			out.Counts[j] += c
		}
	}
	return out
}
