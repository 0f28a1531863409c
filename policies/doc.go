// Package policies is the mesh file: its model ([File] and the [Policy] that
// governs calls), its parser and its canonical rendering. Its live
// distribution to the agents (the KV bucket, the Sources that watch it) is
// the package policies/live.
//
// One YAML file (mesh.yaml, documented in docs/mesh-file.md) describes the
// whole mesh: services, their subsets and accounts, who may call whom, and
// the policies of calls. The parts fit like this:
//
//   - [Parse] and [ParseFile] read a file, refuse anything unknown or
//     inconsistent, and return a validated *File. Every problem found is
//     reported, up to ten, each as a [FieldError] naming the file, the line
//     and the field path ("mesh.yaml:14: services.orders.policy.retries.budget:
//     ..."); all of them match [ErrInvalid] with errors.Is.
//   - [File.Policy] merges the policy levels field by field: built-in
//     defaults, then the file's defaults, then the service's policy, then
//     the route's. [File.MatchRoute] picks the route of one call (first
//     match wins).
//   - [File.JSON] and [File.YAML] render a file canonically (sorted maps,
//     normalized durations and percentages, defaults filled in), and
//     [Diff] lists what changes between two files, as `natsmesh policy diff`
//     shows it (package internal/jsondiff's diff of their canonical JSON,
//     leaf by leaf, routes keyed by name). The canonical JSON parses back
//     to the same File.
//   - [ParseStored] parses a file as the bucket stores it (canonical JSON)
//     with the result of Parse, several times faster: every agent decodes
//     every version applied.
//   - [File.AccountsSpec] derives the mesh's NATS accounts and users, from
//     which package accounts generates the broker configuration.
//
// A *File is immutable once parsed: share it between goroutines freely, and
// never modify one that came from a Source.
package policies
