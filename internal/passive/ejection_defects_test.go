package passive_test

import (
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/passive"
)

var dt0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A claim whose instance its health checks withdrew during the count is
// reported Leaving with Serving false: it is out, so the only serving
// instance must not leave, and the withdrawn claim itself is refused.
func TestAllowedLeavingNotServingCountsOut(t *testing.T) {
	z := passive.Sibling{Place: passive.Place{ID: "z", Since: dt0}, Serving: true, Leaving: true}
	x := passive.Sibling{Place: passive.Place{ID: "x", Since: dt0.Add(time.Millisecond)}, Serving: false, Leaving: true}
	got := passive.Allowed([]passive.Sibling{z, x}, 50)
	if got["z"] == "" {
		t.Fatalf("z may leave though x is not serving: the queue group would be empty (%q)", got)
	}
	if got["x"] == "" {
		t.Fatalf("x, out by its health checks, may leave (%q)", got)
	}
}

// An ejected instance whose place is not kept (its subset has no other
// instance in) still counts as out: it does not count again while out, so
// it stays out, and a later claim must not be let go past max_ejected
// (x, y and z out would be 3 of 4 under 50%).
func TestAllowedEjectedNotKeptCountsOut(t *testing.T) {
	x := passive.Sibling{Place: passive.Place{ID: "x", Since: dt0}, Subset: "v1", Ejected: true}
	y := passive.Sibling{Place: passive.Place{ID: "y"}, Subset: "v1"} // out by its health checks
	z := passive.Sibling{Place: passive.Place{ID: "z", Since: dt0.Add(time.Second)}, Subset: "v2", Serving: true, Leaving: true}
	w := passive.Sibling{Place: passive.Place{ID: "w"}, Subset: "v2", Serving: true}
	got := passive.Allowed([]passive.Sibling{x, y, z, w}, 50)
	if got["z"] == "" {
		t.Fatalf("z may leave: x, y, z out = 3 of 4 under max_ejected 50%% (%q)", got)
	}
	if got["x"] == "" {
		t.Fatalf("x's place is kept though no other instance of v1 serves (%q)", got)
	}
}
