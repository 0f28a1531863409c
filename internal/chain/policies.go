package chain

import (
	"github.com/natsmesh/natsmesh/pipeline"
	resil "github.com/natsmesh/natsmesh/resilience"
)

// routing matches the call's route and picks its subset (split), and
// sends mirror copies.
func routing(o Options) []pipeline.OutboundMiddleware { return nil }

// outboundFaults injects the route's faults where the call enters the mesh.
func outboundFaults(o Options) []pipeline.OutboundMiddleware { return nil }

// resilience applies the route's timeout, retries with their budget,
// hedging, circuit breaker and bulkhead.
func resilience(o Options) []pipeline.OutboundMiddleware {
	return []pipeline.OutboundMiddleware{resil.New(resil.Config{Policies: o.Policies})}
}

// rateLimit applies the service's inbound rate limit per caller.
func rateLimit(o Options) []pipeline.InboundMiddleware { return nil }

// inboundFaults injects faults on the serving side.
func inboundFaults(o Options) []pipeline.InboundMiddleware { return nil }

// passiveHealth watches the local service's answers for outlier detection.
func passiveHealth(o Options) []pipeline.InboundMiddleware { return nil }
