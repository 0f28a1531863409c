package meshstat

import (
	"math"
	"slices"
	"testing"
)

func TestQuantile(t *testing.T) {
	bounds := []float64{1, 5, 25, 100}
	for _, tc := range []struct {
		name     string
		counts   []uint64
		q        float64
		want     float64
		over, ok bool
	}{
		{"empty", []uint64{0, 0, 0, 0, 0}, 0.5, 0, false, false},
		{"all in first bucket interpolates from 0", []uint64{10, 0, 0, 0, 0}, 0.5, 0.5, false, true},
		{"median in second bucket", []uint64{2, 6, 2, 0, 0}, 0.5, 1 + 4*3.0/6, false, true},
		{"p99 at the top of a bucket", []uint64{0, 0, 100, 0, 0}, 0.99, 5 + 20*0.99, false, true},
		{"empty buckets skipped", []uint64{1, 0, 0, 1, 0}, 0.99, 25 + 75*(1.98-1), false, true},
		{"rank in the overflow bucket", []uint64{1, 0, 0, 0, 99}, 0.5, 100, true, true},
		{"p99 lands in overflow", []uint64{98, 0, 0, 0, 2}, 0.99, 100, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, over, ok := Histogram{BoundsMS: bounds, Counts: tc.counts}.Quantile(tc.q)
			if ok != tc.ok || over != tc.over || math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Quantile(%v) = %v, %v, %v; want %v, %v, %v", tc.q, got, over, ok, tc.want, tc.over, tc.ok)
			}
		})
	}
	if _, _, ok := (Histogram{Counts: []uint64{5}}).Quantile(0.5); ok {
		t.Fatal("a histogram without bounds has no quantile")
	}
}

func TestSub(t *testing.T) {
	prev := Histogram{BoundsMS: []float64{1, 5}, Counts: []uint64{1, 2, 3}}
	cur := Histogram{BoundsMS: []float64{1, 5}, Counts: []uint64{4, 2, 5}}
	if d := cur.Sub(prev); !slices.Equal(d.Counts, []uint64{3, 0, 2}) {
		t.Fatalf("delta %v", d.Counts)
	}
	restarted := Histogram{BoundsMS: []float64{1, 5}, Counts: []uint64{0, 1, 0}}
	if d := restarted.Sub(prev); !slices.Equal(d.Counts, restarted.Counts) {
		t.Fatalf("after a restart the delta is the new counts, got %v", d.Counts)
	}
	rebounded := Histogram{BoundsMS: []float64{2, 5}, Counts: []uint64{9, 9, 9}}
	if d := rebounded.Sub(prev); !slices.Equal(d.Counts, rebounded.Counts) {
		t.Fatalf("with new bounds the delta is the new counts, got %v", d.Counts)
	}
}

func TestMerge(t *testing.T) {
	a := Histogram{BoundsMS: []float64{1, 5}, Counts: []uint64{1, 2, 3}}
	b := Histogram{BoundsMS: []float64{1, 5}, Counts: []uint64{10, 20, 30}}
	if m := Merge(a, b); !slices.Equal(m.BoundsMS, a.BoundsMS) || !slices.Equal(m.Counts, []uint64{11, 22, 33}) {
		t.Fatalf("same bounds: %+v", m)
	}
	c := Histogram{BoundsMS: []float64{2, 5, 10}, Counts: []uint64{1, 1, 1, 1}}
	m := Merge(a, c)
	if !slices.Equal(m.BoundsMS, []float64{1, 2, 5, 10}) || !slices.Equal(m.Counts, []uint64{1, 1, 3, 1, 4}) {
		t.Fatalf("union of bounds: %+v", m)
	}
	if m.Total() != a.Total()+c.Total() {
		t.Fatalf("merge lost values: %d", m.Total())
	}
	if m := Merge(); m.Total() != 0 || len(m.Counts) != 1 {
		t.Fatalf("empty merge: %+v", m)
	}
	if m := Merge(Histogram{Counts: []uint64{7}}, a); m.Counts[len(m.Counts)-1] != 10 {
		t.Fatalf("a histogram without bounds goes to the overflow bucket: %+v", m)
	}
}

func TestHistogramValidate(t *testing.T) {
	for _, h := range []Histogram{
		{BoundsMS: []float64{1, 5}, Counts: []uint64{1, 2}},
		{BoundsMS: []float64{5, 1}, Counts: []uint64{1, 2, 3}},
		{BoundsMS: []float64{0, 1}, Counts: []uint64{1, 2, 3}},
		{BoundsMS: []float64{1, 1}, Counts: []uint64{1, 2, 3}},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%+v is valid", h)
		}
	}
	if err := (Histogram{}).Validate(); err != nil {
		t.Errorf("the zero histogram: %v", err)
	}
}
