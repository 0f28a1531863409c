package pipeline

import (
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// Limits gives the bounds of a message at the moment of a call. Every
// adapter that converts a message, HTTP and gRPC, inbound and outbound,
// reads it once per call ([Limits.Now]) rather than keeping a
// [wire.Limits] from its start: the connection's max_payload is that of
// the server it is connected to now, which may change when it reconnects
// to another. A component passes the same Limits to all its adapters,
// [ConnLimits] of its connection, or a func built on [LimitsOf].
type Limits func() wire.Limits

// Now is l's bounds now; a nil l is wire's defaults.
func (l Limits) Now() wire.Limits {
	if l == nil {
		return wire.Limits{}
	}
	return l()
}

// LimitsOf is the one definition of a message's bounds on nc: the
// max_payload of the server nc is connected to now (0 before the first
// connection, which reads as wire's default), and the mesh's header limits
// (wire's defaults).
func LimitsOf(nc *nats.Conn) wire.Limits {
	return wire.Limits{MaxPayload: nc.MaxPayload()}
}

// ConnLimits is the Limits of messages on nc, read at each call
// ([LimitsOf]).
func ConnLimits(nc *nats.Conn) Limits {
	return func() wire.Limits { return LimitsOf(nc) }
}
