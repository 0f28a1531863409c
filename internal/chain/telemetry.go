package chain

import "github.com/natsmesh/natsmesh/pipeline"

// telemetryCall measures and traces each outbound call as its caller sees
// it.
func telemetryCall(o Options) []pipeline.OutboundMiddleware { return nil }

// telemetryAttempt traces each attempt of an outbound call.
func telemetryAttempt(o Options) []pipeline.OutboundMiddleware { return nil }

// telemetryServed measures and traces each inbound call.
func telemetryServed(o Options) []pipeline.InboundMiddleware { return nil }
