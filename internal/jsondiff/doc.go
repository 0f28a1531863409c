// Package jsondiff lists what changes between two JSON documents, leaf by
// leaf, each at its field path: the form in which `natsmesh policy diff`
// and `policy apply` show what a new mesh file changes (package policies
// diffs the canonical renderings of the two files).
//
// A path joins object keys with dots ("services.orders.policy.timeout");
// a list of objects that each have a distinct non-empty "name" is keyed by
// those names ("routes[beta].split"), so inserting a route changes only
// the list's own value (its names, in order) and that route's leaves,
// not every route after it; another list of objects is keyed by index
// ("subsets[0]"); a list of scalars is one leaf. Each value is a leaf's
// compact JSON text.
package jsondiff
