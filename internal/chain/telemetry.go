package chain

import "github.com/natsmesh/natsmesh/pipeline"

// telemetryCall measures and traces each outbound call as its caller sees
// it: outermost, so mesh errors made by any policy below count too.
func telemetryCall(o Options) []pipeline.OutboundMiddleware {
	if o.Telemetry == nil {
		return nil
	}
	return []pipeline.OutboundMiddleware{o.Telemetry.OutboundCall()}
}

// telemetryAttempt traces each attempt of an outbound call and counts
// retries and hedges: innermost of the mesh's, so it sees every attempt
// the resilience policies make, with the subset routing picked.
func telemetryAttempt(o Options) []pipeline.OutboundMiddleware {
	if o.Telemetry == nil {
		return nil
	}
	return []pipeline.OutboundMiddleware{o.Telemetry.OutboundAttempt()}
}

// telemetryServed measures and traces each inbound call: outermost, so
// refusals by authorization, rate limits and faults count too.
func telemetryServed(o Options) []pipeline.InboundMiddleware {
	if o.Telemetry == nil {
		return nil
	}
	return []pipeline.InboundMiddleware{o.Telemetry.Inbound()}
}
