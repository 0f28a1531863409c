package traffic

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/natsmesh/natsmesh/policies"
)

// Place is an instance's place in the order passive health keeps
// instances out in: the earlier Since, the earlier the place; equal times
// are ordered by ID. Since is the moment the instance claimed its place,
// by its own clock, but always later than every claim it has heard of
// before (a Lamport clock: each count an instance asks for carries its
// place, and an instance that answers a count notes it), so a claim made
// after answering a count that did not show it is placed after the
// asker's, whatever the clocks say.
type Place struct {
	ID    string
	Since time.Time
}

// Sibling is one instance of a service, as its answer in a discovery
// count shows it.
type Sibling struct {
	// Place is the instance's ID, and its place while it is Ejected or
	// Leaving (Since zero otherwise).
	Place
	// Subset is its subset, "" for none.
	Subset string
	// Serving is whether it is in its queue groups now.
	Serving bool
	// Ejected is whether passive health has taken it out.
	Ejected bool
	// Leaving is whether it has claimed a place to leave and is counting
	// its siblings (it still serves).
	Leaving bool
}

// Allowed decides, from one count of a service's instances, which of the
// instances passive health holds out or that are leaving (the claims) may
// be out: the map has an entry for each claim, "" for one that may be out
// and otherwise why not. The rule:
//
//   - At most floor(max_ejected × instances) instances are out, for any
//     reason: those out by their health checks (not serving, no claim)
//     take their share first.
//   - The claims are taken in order: those already out before those
//     leaving (an instance out keeps its place against later claims,
//     whatever the clocks say), then by Place (time, then ID). Each keeps
//     its place if its queue groups (the service's, and its subset's if it
//     has one) still have an instance in them once it and the places kept
//     before it are out (a claim not kept counts as in: it stays, or comes
//     back), and if the share above allows one more.
//
// Every instance that sees the same claims computes the same answer, so
// instances that decide at the same moment agree on who leaves. Each
// instance acts only on its own entry: a claim not kept stays in (or, out
// already, comes back when its own next count says so).
func Allowed(sibs []Sibling, maxEjected policies.Percent) map[string]string {
	limit := int(math.Floor(float64(maxEjected)*float64(len(sibs))/100 + 1e-9))
	var claims []Sibling
	in, subsetIn := 0, map[string]int{} // instances that stay in their groups
	out := 0
	for _, s := range sibs {
		switch {
		case s.Ejected || s.Leaving:
			claims = append(claims, s)
			in++ // in, until kept out below
			subsetIn[s.Subset]++
		case s.Serving:
			in++
			subsetIn[s.Subset]++
		default:
			out++ // out by its health checks
		}
	}
	slices.SortFunc(claims, func(a, b Sibling) int {
		if a.Ejected != b.Ejected {
			if a.Ejected {
				return -1
			}
			return 1
		}
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	allowed := make(map[string]string, len(claims))
	for _, c := range claims {
		switch {
		case in <= 1:
			allowed[c.ID] = "no other instance is serving"
		case c.Subset != "" && subsetIn[c.Subset] <= 1:
			allowed[c.ID] = "no other instance of its subset is serving"
		case out >= limit:
			allowed[c.ID] = fmt.Sprintf("%d of %d instances are out, the most max_ejected %v allows", out, len(sibs), maxEjected)
		default:
			allowed[c.ID] = ""
			out++
			in--
			subsetIn[c.Subset]--
		}
	}
	return allowed
}
