package resilience

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// The policies read an attempt's result by wire's one rule of whether a
// service failed, in its variants for them (wire.Outcome: Retry,
// DestinationFailed, EndsHedge). Package pipeline guarantees that every
// failure of the mesh is a *wire.Error, so a reply (err nil) is always the
// service's own answer. The functions here see no call: a reply is read by
// its own status header, which every mesh answer has (a NATS-native
// answer reads as HTTP reads it).

// outcomeOf reads an attempt's result.
func outcomeOf(msg *nats.Msg, err error) wire.Outcome { return wire.OutcomeOf("", msg, err) }

// retryable reports whether an attempt that ended with msg or err may be
// repeated: always when nothing ran, and when the call is idempotent, also
// after a timeout or a server failure worth another try (wire.Outcome's
// Retry). A cancelled attempt (the caller went away, or a hedge lost) and
// the caller's own refusals (its breaker, its bulkhead) never are.
func retryable(msg *nats.Msg, err error, idempotent bool) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, errLocal) {
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
func destinationFailed(msg *nats.Msg, err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	return outcomeOf(msg, err).DestinationFailed()
}

// hedgeWins reports whether an attempt's result ends a hedged call at once,
// cancelling the attempts still running (wire.Outcome's EndsHedge). Other
// results wait for the rest; when all have ended, the last one is the
// call's.
func hedgeWins(msg *nats.Msg, err error) bool {
	return err == nil && outcomeOf(msg, nil).EndsHedge()
}
