// Package authz decides whether one call is allowed by the mesh file's
// allow lists: who may call a service, with which methods, and (for HTTP)
// under which path prefixes. It is the one decision both agents make: the
// caller's agent, so that a forbidden call is answered forbidden at once
// instead of being refused by the broker, and the callee's agent, which
// alone sees the HTTP path (the broker sees subjects only) and which
// authorizes by the caller token of the subject, the identity the broker
// vouches for.
//
// [Check] decides in this order:
//
//  1. reach: a caller in another account than the service reaches it only
//     if the service's account exports it to the caller's account (the
//     bridge and services the file does not declare are in the default
//     account "mesh");
//  2. a service with no allow list (or not declared in the file) admits
//     every caller when the file's allow is "all", and nobody when it is
//     "deny";
//  3. otherwise the first rule naming the caller whose methods and paths
//     match admits the call; none: forbidden.
//
// Methods match exactly: an HTTP method against the subject's operation
// (which the broker enforces too), a gRPC method against "pkg.Svc/Method"
// or "pkg.Svc/*". A rule with paths admits HTTP calls only.
//
// Paths are matched on their canonical form ([CanonicalPath]): percent
// escapes decoded once (%2F included), backslashes read as slashes, empty,
// "." and ".." segments resolved, so "//admin", "/%2Fadmin", "/./admin"
// and "/public/../admin" all decide as "/admin". A path that has no
// canonical form (a NUL or other control byte, even escaped; a bad or a
// double escape such as %252F; a query or fragment character) matches no
// path prefix: a rule with paths never admits it, whatever the server
// behind would make of it.
package authz
