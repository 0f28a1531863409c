package pipeline

import "context"

// routeKey is the context key of the matched route's name.
type routeKey struct{}

// WithRoute returns ctx carrying the name of the mesh file route the
// outbound call matched, for [RouteFrom]. The routing middleware sets it;
// the policies below it (faults, timeouts, retries, breakers) look their
// route's policy up by it. An empty name clears it: the call matched no
// route.
func WithRoute(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, routeKey{}, name)
}

// RouteFrom returns the name of the route the outbound call under ctx
// matched, and false if it matched none (then the service's own policy
// applies).
func RouteFrom(ctx context.Context) (string, bool) {
	name, _ := ctx.Value(routeKey{}).(string)
	return name, name != ""
}
