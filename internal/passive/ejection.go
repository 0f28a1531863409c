package passive

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
//     reason: those out by their health checks (not serving and not
//     Ejected, a claim among them included) take their share first, then
//     those Ejected, then those leaving.
//   - An instance counts as in only while it is Serving and not Ejected.
//     Every Ejected instance counts as out, whether its place is kept or
//     not: it checks its place once, right after it withdraws, and
//     otherwise stays out for its cool-off, so no count may assume it
//     comes back. A claim that is not serving (its health checks withdrew
//     it during its own count) counts as out by its health checks, and its
//     entry says so: it cannot leave, being out already.
//   - The claims are taken in order: those Ejected before those leaving
//     (an instance out keeps its place against later claims, whatever the
//     clocks say), then by Place (time, then ID). An Ejected one keeps its
//     place if its queue groups (the service's, and its subset's if it has
//     one) have an instance in them, and if the share above allows it
//     counting those out before it. A leaving one keeps its place if its
//     queue groups still have an instance in them once it and the places
//     kept before it are out (a leaving claim not kept counts as in: it
//     stays), and if the share allows one more.
//
// Every instance that sees the same claims computes the same answer, so
// instances that decide at the same moment agree on who leaves. Each
// instance acts only on its own entry: a leaving claim not kept stays in;
// an Ejected one not kept comes back if it is checking its place (its
// count right after withdrawing).
func Allowed(sibs []Sibling, maxEjected policies.Percent) map[string]string {
	limit := int(math.Floor(float64(maxEjected)*float64(len(sibs))/100 + 1e-9))
	var ejected, leaving []Sibling
	in, subsetIn := 0, map[string]int{} // instances that stay in their groups
	down := 0                           // out by their health checks
	allowed := map[string]string{}
	for _, s := range sibs {
		switch {
		case s.Ejected:
			ejected = append(ejected, s)
		case !s.Serving:
			down++
			if s.Leaving {
				allowed[s.ID] = "it is not serving: its health checks withdrew it"
			}
		case s.Leaving:
			leaving = append(leaving, s)
			in++ // in, until kept out below
			subsetIn[s.Subset]++
		default:
			in++
			subsetIn[s.Subset]++
		}
	}
	byPlace := func(a, b Sibling) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
	slices.SortFunc(ejected, byPlace)
	slices.SortFunc(leaving, byPlace)
	full := func(out int) string {
		return fmt.Sprintf("%d of %d instances are out, the most max_ejected %v allows", out, len(sibs), maxEjected)
	}
	out := down
	for _, c := range ejected {
		switch {
		case in == 0:
			allowed[c.ID] = "no other instance is serving"
		case c.Subset != "" && subsetIn[c.Subset] == 0:
			allowed[c.ID] = "no other instance of its subset is serving"
		case out >= limit:
			allowed[c.ID] = full(out)
		default:
			allowed[c.ID] = ""
		}
		out++ // out, kept or not
	}
	for _, c := range leaving {
		switch {
		case in <= 1:
			allowed[c.ID] = "no other instance is serving"
		case c.Subset != "" && subsetIn[c.Subset] <= 1:
			allowed[c.ID] = "no other instance of its subset is serving"
		case out >= limit:
			allowed[c.ID] = full(out)
		default:
			allowed[c.ID] = ""
			out++
			in--
			subsetIn[c.Subset]--
		}
	}
	return allowed
}
