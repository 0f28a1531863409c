package passive_test

import (
	"maps"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/policies"
)

func TestAllowed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	serving := func(id string) passive.Sibling {
		return passive.Sibling{Place: passive.Place{ID: id}, Serving: true}
	}
	down := func(id string) passive.Sibling { // out by its health checks
		return passive.Sibling{Place: passive.Place{ID: id}}
	}
	leaving := func(id string, ms int) passive.Sibling {
		return passive.Sibling{Place: passive.Place{ID: id, Since: at(ms)}, Serving: true, Leaving: true}
	}
	ejected := func(id string, ms int) passive.Sibling {
		return passive.Sibling{Place: passive.Place{ID: id, Since: at(ms)}, Ejected: true}
	}
	sub := func(s passive.Sibling, subset string) passive.Sibling { s.Subset = subset; return s }
	const limit, alone, subsetAlone = "limit", "no other instance is serving", "no other instance of its subset is serving"
	for _, tc := range []struct {
		name string
		max  policies.Percent
		sibs []passive.Sibling
		want map[string]string // "limit" for any refusal by max_ejected
	}{
		{"the earlier of two claims, 25% of 4", 25,
			[]passive.Sibling{leaving("b", 2), leaving("a", 1), serving("c"), serving("d")},
			map[string]string{"a": "", "b": limit}},
		{"equal times by ID", 25,
			[]passive.Sibling{leaving("b", 1), leaving("a", 1), serving("c"), serving("d")},
			map[string]string{"a": "", "b": limit}},
		{"both, 50% of 4", 50,
			[]passive.Sibling{leaving("b", 2), leaving("a", 1), serving("c"), serving("d")},
			map[string]string{"a": "", "b": ""}},
		{"out first, whatever the times", 25,
			[]passive.Sibling{leaving("a", 1), ejected("b", 5), serving("c"), serving("d")},
			map[string]string{"b": "", "a": limit}},
		{"two out: the later comes back", 25,
			[]passive.Sibling{ejected("a", 1), ejected("b", 2), serving("c"), serving("d")},
			map[string]string{"a": "", "b": limit}},
		{"out with no other instance in comes back", 100,
			[]passive.Sibling{ejected("a", 1), down("b")},
			map[string]string{"a": alone}},
		{"out, not kept, still counts out", 50,
			[]passive.Sibling{sub(ejected("a", 1), "v1"), sub(down("b"), "v1"), sub(leaving("c", 2), "v2"), sub(serving("d"), "v2")},
			map[string]string{"a": subsetAlone, "c": limit}},
		{"a claim withdrawn by its health checks is out", 100,
			[]passive.Sibling{leaving("a", 1), {Place: passive.Place{ID: "b", Since: at(2)}, Leaving: true}},
			map[string]string{"a": alone, "b": "it is not serving: its health checks withdrew it"}},
		{"out by health takes the share first", 25,
			[]passive.Sibling{leaving("a", 1), down("b"), serving("c"), serving("d")},
			map[string]string{"a": limit}},
		{"under one whole instance", 25,
			[]passive.Sibling{leaving("a", 1), serving("b"), serving("c")},
			map[string]string{"a": limit}},
		{"30% of 10 is 3", 30,
			[]passive.Sibling{leaving("a", 1), leaving("b", 2), leaving("c", 3), leaving("d", 4),
				serving("e"), serving("f"), serving("g"), serving("h"), serving("i"), serving("j")},
			map[string]string{"a": "", "b": "", "c": "", "d": limit}},
		{"the last serving instance", 100,
			[]passive.Sibling{leaving("a", 1)},
			map[string]string{"a": alone}},
		{"everyone leaving at once: the last stays", 100,
			[]passive.Sibling{leaving("c", 3), leaving("a", 1), leaving("b", 2)},
			map[string]string{"a": "", "b": "", "c": alone}},
		{"the rest of the group is down", 100,
			[]passive.Sibling{leaving("a", 1), down("b")},
			map[string]string{"a": alone}},
		{"the last of its subset", 100,
			[]passive.Sibling{sub(leaving("a", 1), "v1"), sub(leaving("b", 2), "v1"), sub(serving("c"), "v2")},
			map[string]string{"a": "", "b": subsetAlone}},
		{"no subset, no subset group", 50,
			[]passive.Sibling{leaving("a", 1), sub(serving("b"), "v1")},
			map[string]string{"a": ""}},
		{"a claim not kept stays in for the next", 50,
			[]passive.Sibling{sub(leaving("a", 1), "v1"), sub(leaving("b", 2), "v2"), sub(serving("c"), "v2"), serving("d")},
			map[string]string{"a": subsetAlone, "b": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := passive.Allowed(tc.sibs, tc.max)
			norm := maps.Clone(got)
			for id, why := range norm {
				if tc.want[id] == limit && why != "" && why != alone && why != subsetAlone {
					norm[id] = limit
				}
			}
			if !maps.Equal(norm, tc.want) {
				t.Errorf("Allowed = %q, want %q", got, tc.want)
			}
		})
	}
}
