package resilience

import (
	"context"
	"errors"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// The policies read an attempt's result by wire's one rule of whether a
// service failed, in its variants for them (wire.Outcome: Retry,
// DestinationFailed, EndsHedge). Package pipeline guarantees that every
// failure of the mesh is a *wire.Error, so a reply (err nil) is always the
// service's own answer, whose outcome the reply has read once
// (pipeline.Reply.Outcome); a mesh error's reads the same in any protocol.

// outcomeOf reads an attempt's result.
func outcomeOf(msg *pipeline.Reply, err error) wire.Outcome { return pipeline.OutcomeOf("", msg, err) }

// retryable reports whether an attempt that ended with msg or err may be
// repeated: always when nothing ran, and when the call is idempotent, also
// after a timeout or a server failure worth another try (wire.Outcome's
// Retry). A cancelled attempt (the caller went away, or a hedge lost) and
// the caller's own refusals (its breaker, its bulkhead) never are.
//
// A streamed reply commits the call (as a gRPC client commits an RPC once
// it has the response's headers): it is the call's answer, never retried,
// since its outcome is known only at its end and a retry would discard a
// stream the service has begun.
func retryable(msg *pipeline.Reply, err error, idempotent bool) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, errLocal) || (err == nil && msg.Streamed()) {
		return false
	}
	switch outcomeOf(msg, err).Retry() {
	case wire.RetryAlways:
		return true
	case wire.RetryIdempotent:
		return idempotent
	}
	return false
}

// destinationFailed reports whether an attempt's result counts against its
// destination in the circuit breaker (wire.Outcome's DestinationFailed). A
// cancelled attempt does not count.
func destinationFailed(msg *pipeline.Reply, err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	return outcomeOf(msg, err).DestinationFailed()
}

// hedgeWins reports whether an attempt's result ends a hedged call at once,
// cancelling the attempts still running (wire.Outcome's EndsHedge). Other
// results wait for the rest; when all have ended, the last one is the
// call's. A streamed reply commits the call (see retryable): it wins.
func hedgeWins(msg *pipeline.Reply, err error) bool {
	return err == nil && (msg.Streamed() || outcomeOf(msg, nil).EndsHedge())
}
