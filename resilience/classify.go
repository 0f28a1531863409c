package resilience

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"

	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// outcome is what an attempt's result means to the policies.
type outcome int

const (
	// answered: the service answered, and not with a server error.
	answered outcome = iota
	// serverError: the service answered with a 5xx (HTTP) or a gRPC
	// status that says it failed.
	serverError
	// notRun: the mesh refused or lost the call before any service code
	// ran (no responders, a remote overloaded, upstream-refused or
	// no-mesh-file answer, no broker connection); repeating it is always
	// safe.
	notRun
	// timedOut: the attempt ran out of time; the service may have run it.
	timedOut
	// other: any other mesh error (forbidden, bad request, too large, the
	// caller's own circuit breaker or bulkhead, a cancelled call). Never
	// retried.
	other
)

// classify reads an attempt's result. Package pipeline guarantees that
// every failure of the mesh is a *wire.Error, so a reply (err nil) is
// always the service's own answer.
func classify(msg *nats.Msg, err error) outcome {
	if err == nil {
		if serverFailed(msg) {
			return serverError
		}
		return answered
	}
	if errors.Is(err, context.Canceled) {
		// The caller went away, or a hedge lost: nothing to learn.
		return other
	}
	var e *wire.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.DeadlineExceeded) {
			return timedOut
		}
		return other
	}
	if errors.Is(e, errLocal) {
		return other
	}
	switch e.Kind {
	case wire.KindNoResponders, wire.KindOverloaded, wire.KindUpstreamRefused, wire.KindBrokerUnavailable, wire.KindNoMeshFile:
		return notRun
	case wire.KindTimeout:
		return timedOut
	}
	return other
}

// retryable reports whether an attempt with outcome o may be repeated:
// always when nothing ran, and for 5xx replies only when the call is
// idempotent. Timeouts are retried only when idempotent too, and only
// gRPC UNAVAILABLE among gRPC failures (see serverFailed).
func retryable(o outcome, msg *nats.Msg, idempotent bool) bool {
	switch o {
	case notRun:
		return true
	case timedOut:
		return idempotent
	case serverError:
		return idempotent && retryableReply(msg)
	}
	return false
}

// destinationFailed reports whether an attempt's result counts against its
// destination in the circuit breaker: a failure that says the destination
// is bad (timeout, its agent could not reach or was refused by its local
// service, no instance serving) or a server error. The caller's own
// refusals, 4xx replies, forbidden, and lost hedges do not count.
func destinationFailed(msg *nats.Msg, err error) bool {
	if err == nil {
		return serverFailed(msg)
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var e *wire.Error
	if !errors.As(err, &e) {
		return errors.Is(err, context.DeadlineExceeded)
	}
	switch e.Kind {
	case wire.KindTimeout, wire.KindUpstream, wire.KindUpstreamRefused, wire.KindNoResponders:
		return !errors.Is(e.Err, context.Canceled)
	}
	return false
}

// serverFailed reports whether a reply is a server error: HTTP status 500
// or more, or a gRPC status that grpc-gateway maps to one (UNKNOWN,
// INTERNAL, UNAVAILABLE, DATA_LOSS, DEADLINE_EXCEEDED; not UNIMPLEMENTED).
func serverFailed(msg *nats.Msg) bool {
	if msg == nil {
		return false
	}
	if v := msg.Header.Get(grpcwire.HeaderGRPCStatus); v != "" {
		switch grpcCode(v) {
		case codes.Unknown, codes.Internal, codes.Unavailable, codes.DataLoss, codes.DeadlineExceeded:
			return true
		}
		return false
	}
	s, err := strconv.Atoi(msg.Header.Get(wire.HeaderStatus))
	return err == nil && s >= 500
}

// retryableReply reports whether a server error may be retried for an
// idempotent call: any HTTP 5xx, and gRPC UNAVAILABLE only (gRPC's own
// retry policy's usual choice: the other codes say the method ran and
// failed).
func retryableReply(msg *nats.Msg) bool {
	if v := msg.Header.Get(grpcwire.HeaderGRPCStatus); v != "" {
		return grpcCode(v) == codes.Unavailable
	}
	return true
}

func grpcCode(v string) codes.Code {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return codes.Unknown
	}
	return codes.Code(n)
}

// hedgeWins reports whether an attempt's result ends a hedged call at once,
// cancelling the attempts still running: a reply that is not a server
// error. Other results wait for the rest; when all have ended, the last
// one is the call's.
func hedgeWins(msg *nats.Msg, err error) bool {
	return err == nil && !serverFailed(msg)
}
