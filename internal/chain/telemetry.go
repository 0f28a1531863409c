package chain

import (
	"github.com/natsmesh/natsmesh/pipeline"
	resil "github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/telemetry"
)

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

// breakerObserver shows the resilience policies' circuit breakers in the
// metrics (natsmesh_outbound_breaker_state and _transitions_total), as
// the breakers of the component's own calls (caller o.Service), until
// o.Releases is released; nil without telemetry.
func breakerObserver(o Options) resil.Observer {
	if o.Telemetry == nil {
		return nil
	}
	return breakerMetrics{caller: o.Service, tel: o.Telemetry, releases: o.Releases}
}

type breakerMetrics struct {
	caller   string
	tel      *telemetry.Telemetry
	releases *Releases
}

var _ resil.Observer = breakerMetrics{}

func (b breakerMetrics) BreakerChanged(d resil.Destination, _, to resil.BreakerState) {
	b.tel.BreakerChanged(b.caller, telemetryBreaker(d, to))
}

func (b breakerMetrics) ObserveBreakers(list func() []resil.Breaker) {
	b.releases.add(b.tel.ObserveBreakers(b.caller, func() []telemetry.Breaker {
		all := list()
		out := make([]telemetry.Breaker, len(all))
		for i, br := range all {
			out[i] = telemetryBreaker(br.Dest, br.State)
		}
		return out
	}))
}

func telemetryBreaker(d resil.Destination, s resil.BreakerState) telemetry.Breaker {
	b := telemetry.Breaker{Service: d.Service, Subset: d.Subset, Subject: d.Subject, Egress: d.Egress, State: telemetry.BreakerClosed}
	switch s {
	case resil.BreakerHalfOpen:
		b.State = telemetry.BreakerHalfOpen
	case resil.BreakerOpen:
		b.State = telemetry.BreakerOpen
	}
	return b
}
