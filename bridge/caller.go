package bridge

import "context"

// WithCaller returns ctx carrying the calling service's name, as read from a
// request's subject, for CallerFromContext. The serving side of every
// protocol sets it; handlers never take the caller from a header a client
// could forge.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}
