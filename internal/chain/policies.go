package chain

import (
	"github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/pipeline"
	resil "github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/traffic"
)

func (o Options) traffic() traffic.Config {
	return traffic.Config{Service: o.Service, Policies: o.Policies, Logger: o.Logger}
}

// routing matches the call's route and picks its subset (split), and
// sends mirror copies.
func routing(o Options) []pipeline.OutboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	return []pipeline.OutboundMiddleware{traffic.Routing(o.traffic())}
}

// outboundFaults injects the route's faults where the call enters the mesh.
func outboundFaults(o Options) []pipeline.OutboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	return []pipeline.OutboundMiddleware{traffic.Faults(o.traffic())}
}

// resilience applies the route's timeout, retries with their budget,
// hedging, circuit breaker and bulkhead; telemetry watches the breakers.
func resilience(o Options) []pipeline.OutboundMiddleware {
	return []pipeline.OutboundMiddleware{resil.New(resil.Config{Policies: o.Policies, Observer: breakerObserver(o)})}
}

// rateLimit applies the service's inbound rate limit per caller.
func rateLimit(o Options) []pipeline.InboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	return []pipeline.InboundMiddleware{traffic.RateLimit(o.traffic())}
}

// inboundFaults injects faults on the serving side. The mesh file has no
// inbound fault section (policies.Inbound), so there is nothing to inject:
// faults are injected on the calling side (outboundFaults).
func inboundFaults(o Options) []pipeline.InboundMiddleware { return nil }

// passiveHealth watches the local service's answers for outlier detection;
// it needs the agent's hold on its queue groups (Options.Instance), so the
// gateway has none.
func passiveHealth(o Options) []pipeline.InboundMiddleware {
	if o.Policies == nil || o.Instance.Claim == nil || o.Instance.Withdraw == nil || o.Instance.Siblings == nil {
		return nil
	}
	return []pipeline.InboundMiddleware{passive.Middleware(passive.Options{Service: o.Service, Policies: o.Policies, Logger: o.Logger}, o.Instance)}
}
