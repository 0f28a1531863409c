package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultTimeout bounds a call whose context has no deadline: every NATS
// request has one, so no caller ever waits forever.
const DefaultTimeout = 30 * time.Second

// Request publishes m and waits for its one reply, until ctx is done or, when
// ctx has no deadline, for DefaultTimeout. Before sending it sets m's
// Mesh-Timeout to the time left, so a retried message carries the deadline of
// its own attempt. Failures to get a reply (no responders, timeout, closed
// connection, permissions) are returned as *Error; a reply that carries a mesh
// error is returned as a reply, for the decoder to read.
func Request(ctx context.Context, nc *nats.Conn, m *nats.Msg) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	deadline, ok := ctx.Deadline()
	setTimeout(m.Header, deadline, ok)
	reply, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		e := FromError(err)
		if e.Kind == KindNoResponders && errors.Is(err, nats.ErrNoResponders) {
			if s, perr := ParseSubject(m.Subject); perr == nil {
				e.Message = "no instance of " + s.Service + " is serving"
			} else {
				e.Message = "no responder on subject " + m.Subject
			}
		}
		return nil, e
	}
	return reply, nil
}

// RequestFunc sends one request message and returns its reply, with the
// contract of [Request]. The agent passes one that applies its policies
// (timeouts, retries, circuit breaking) around Request; converters in this
// package take a RequestFunc so they stay free of policy.
type RequestFunc func(ctx context.Context, m *nats.Msg) (*nats.Msg, error)

// Requester returns the plain RequestFunc for nc.
func Requester(nc *nats.Conn) RequestFunc {
	return func(ctx context.Context, m *nats.Msg) (*nats.Msg, error) { return Request(ctx, nc, m) }
}
