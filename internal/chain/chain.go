// Package chain composes the mesh's middleware for the two call pipelines,
// in the order package pipeline documents, from what a component is
// configured with: the live mesh file (policies), telemetry, and the
// application's own middleware. The agent and the edge bridge both build
// their pipelines with it, so every entry point gets the same behaviour.
//
// Each concern lives in a file of its own here (policies.go, security.go,
// telemetry.go) and contributes middleware at its places in the order;
// this file owns the order itself.
package chain

import (
	"log/slog"
	"sync"

	"github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
)

// Options are what the middleware is built from.
type Options struct {
	// Service is the local component's name: the caller of outbound calls,
	// the callee of inbound ones ("bridge" for the edge gateway).
	Service string
	// Policies is the live mesh file; nil applies the built-in policy.
	Policies *live.Source
	// FailClosed refuses every call, outbound and inbound, with
	// no-mesh-file while Policies holds no file, instead of applying the
	// built-in policy: for a component whose connection authenticates
	// (docs/security.md, "Fail closed").
	FailClosed bool
	// Telemetry records metrics, traces and access logs; nil records none.
	Telemetry *telemetry.Telemetry
	// Logger receives the middleware's own logs. Default slog.Default().
	Logger *slog.Logger

	// Instance is an inbound agent's hold on its queue groups, for passive
	// health (see passive.Instance). The zero value (the gateway, an
	// outbound-only agent): no passive health.
	Instance passive.Instance

	// Releases, when set, collects what the middleware holds outside
	// itself (its circuit breakers' registration with Telemetry); the
	// component calls its Release when it shuts down. Nil: that lasts
	// as long as the Telemetry.
	Releases *Releases
}

// Releases collects what a component's middleware must let go of when
// the component shuts down. The zero value is ready; a nil *Releases
// collects nothing.
type Releases struct {
	mu  sync.Mutex
	fns []func()
}

func (r *Releases) add(f func()) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fns = append(r.fns, f)
}

// Release lets go of everything collected so far, once: a second call
// does nothing.
func (r *Releases) Release() {
	if r == nil {
		return
	}
	r.mu.Lock()
	fns := r.fns
	r.fns = nil
	r.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// Outbound is the outbound middleware, outermost first, followed by extra
// (the application's own, innermost: it sees each attempt just before it
// is sent).
func Outbound(o Options, extra ...pipeline.OutboundMiddleware) []pipeline.OutboundMiddleware {
	var mws []pipeline.OutboundMiddleware
	mws = append(mws, telemetryCall(o)...)    // 1. one span and measurement per call
	mws = append(mws, routing(o)...)          // 2. route match, split, mirror
	mws = append(mws, outboundAuthz(o)...)    // 3. allow lists, answered at the caller at once
	mws = append(mws, resilience(o)...)       // 4-7. timeout, retries and hedges, bulkhead, breaker
	mws = append(mws, telemetryAttempt(o)...) // 8. one span per attempt
	// 9. Fault injection, per attempt: below the resilience policies, so
	// that an injected abort or delay is retried, hedged, timed out and
	// counted by the breaker as a real failure would be, and the attempt's
	// span shows it (docs/decisions.md).
	mws = append(mws, outboundFaults(o)...)
	return append(mws, extra...)
}

// Egress is the middleware of the path out of the mesh (package egress),
// outermost first: telemetry of the call (its callee "egress:HOST", or
// "egress:_other" for a host the mesh file does not list), gate (the
// egress package's refusal of a host the mesh file does not allow, here
// so that refused calls are counted), the resilience policies of the
// external host (its timeout, retries, bulkhead and breaker, by its entry
// in the mesh file; none for an unlisted host), and telemetry of each
// attempt. Routing, authorization and fault injection are the mesh's own
// and do not apply to hosts outside it. The resilience state (breakers,
// budgets) is the egress pipeline's own.
func Egress(o Options, gate pipeline.OutboundMiddleware) []pipeline.OutboundMiddleware {
	var mws []pipeline.OutboundMiddleware
	mws = append(mws, telemetryCall(o)...)
	mws = append(mws, gate)
	mws = append(mws, resilience(o)...)
	return append(mws, telemetryAttempt(o)...)
}

// Inbound is the inbound middleware, outermost first, followed by extra.
func Inbound(o Options, extra ...pipeline.InboundMiddleware) []pipeline.InboundMiddleware {
	var mws []pipeline.InboundMiddleware
	mws = append(mws, telemetryServed(o)...) // 1. the served call
	mws = append(mws, inboundAuthz(o)...)    // 2. authorization of the caller
	mws = append(mws, rateLimit(o)...)       // 3. rate limit per caller
	mws = append(mws, inboundFaults(o)...)   // 4. fault injection
	mws = append(mws, passiveHealth(o)...)   // 5. outlier detection
	return append(mws, extra...)
}
