package pipeline

import "context"

// Context values that outbound middleware pass to the middleware inside
// them (in the order this package's doc states). Each is set by one
// concern and read by the ones after it:
//
//   - the route: set by routing, read by the resilience policies to pick
//     the route's policy, and by telemetry;
//   - [Attempt]: set by the resilience policies on each attempt's context,
//     read by telemetry of each attempt.

// routeKey is the context key of the matched route's name.
type routeKey struct{}

// WithRoute returns ctx carrying the name of the route of the mesh file
// that the call matched, for [RouteFrom]. The routing middleware sets it;
// a call without one gets its service's policy. An empty name clears it:
// the call matched no route.
func WithRoute(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, routeKey{}, name)
}

// RouteFrom returns the name of the route the outbound call under ctx
// matched, and false when routing matched none (or did not run).
func RouteFrom(ctx context.Context) (string, bool) {
	r, _ := ctx.Value(routeKey{}).(string)
	return r, r != ""
}

// Attempt describes one attempt of a call, on the context the attempt is
// sent with.
type Attempt struct {
	// Number counts the call's attempts from 1, in the order they start
	// (hedges included).
	Number int
	// Hedge says the attempt was sent while an earlier one was still
	// running.
	Hedge bool
}

type attemptKey struct{}

// attemptCode is an Attempt as one integer (the number shifted left, the
// hedge flag in bit 0): boxed into the context it takes no allocation for
// the first 127 attempts (the runtime keeps the boxes of small integers),
// so numbering an attempt costs only its context.
type attemptCode uint64

// WithAttempt returns ctx carrying a, for [AttemptFrom].
func WithAttempt(ctx context.Context, a Attempt) context.Context {
	code := attemptCode(max(a.Number, 0)) << 1
	if a.Hedge {
		code |= 1
	}
	return context.WithValue(ctx, attemptKey{}, code)
}

// AttemptFrom returns the attempt sent under ctx, and false outside the
// resilience policies (no attempt has been numbered).
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	code, ok := ctx.Value(attemptKey{}).(attemptCode)
	if !ok {
		return Attempt{}, false
	}
	return Attempt{Number: int(code >> 1), Hedge: code&1 == 1}, true
}

// mirrorKey marks the context of a mirror copy.
type mirrorKey struct{}

// WithMirror marks ctx as the context of a mirror copy of a call (the
// routing middleware sends those), for [IsMirror]: the resilience policies
// send a copy once, never retried or hedged, so shadow traffic never
// multiplies, and telemetry can tell copies apart.
func WithMirror(ctx context.Context) context.Context {
	return context.WithValue(ctx, mirrorKey{}, true)
}

// IsMirror reports whether ctx is the context of a mirror copy.
func IsMirror(ctx context.Context) bool {
	m, _ := ctx.Value(mirrorKey{}).(bool)
	return m
}
