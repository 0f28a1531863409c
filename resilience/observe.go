package resilience

import (
	"fmt"
	"strings"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
)

// Observer watches the circuit breakers of one middleware, for metrics
// (package internal/chain adapts it to package telemetry, so this package
// does not depend on it). Its methods must be safe for concurrent use.
type Observer interface {
	// BreakerChanged is called each time the breaker of dest goes from one
	// state to another, in the goroutine of the call that moved it and
	// outside the breaker's lock; it must return quickly. A breaker opens
	// and closes as a call records its outcome, and goes half-open when
	// the first call after open_for asks it for a permit (not when
	// open_for ends).
	BreakerChanged(dest Destination, from, to BreakerState)
	// ObserveBreakers is called once, by New, with the function that
	// lists the middleware's breakers in use and their states now; the
	// observer calls it whenever it reads them (at a scrape, say).
	ObserveBreakers(list func() []Breaker)
}

// Destination is where a breaker's calls go: a service and subset, the
// NATS-native subject of an edge gateway's route, or an external host.
type Destination struct {
	// Service and Subset name a meshed destination; Subset is "" for any
	// instance. Both are "" when Subject or Egress is set.
	Service, Subset string
	// Subject is the subject of a NATS-native destination, else "".
	Subject string
	// Egress is an external host as the mesh file lists it
	// (pipeline.Call.Egress), else "".
	Egress string
}

// String is the destination as error messages name it: "orders",
// "orders@v2", the subject, or "egress:" and the host.
func (d Destination) String() string {
	switch {
	case d.Subject != "":
		return d.Subject
	case d.Egress != "":
		return "egress:" + d.Egress
	case d.Subset != "":
		return d.Service + "@" + d.Subset
	}
	return d.Service
}

// egressOwner begins the policyOwner of an external host's calls.
const egressOwner = "egress:"

// policyOwner names whose policy configures the calls of c: its service,
// or "egress:" and its external host's entry (no service is named so).
func policyOwner(c *pipeline.Call) string {
	if c.Egress != "" {
		return egressOwner + c.Egress
	}
	return c.Service
}

func destinationOf(c *pipeline.Call) Destination {
	switch {
	case c.Subject != "":
		return Destination{Subject: c.Subject}
	case c.Egress != "":
		return Destination{Egress: c.Egress}
	}
	return Destination{Service: c.Service, Subset: c.Subset}
}

// BreakerState is a circuit breaker's state.
type BreakerState int

const (
	// BreakerClosed lets every call through, counting failures.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen lets half_open_probes calls through to decide
	// whether to close again.
	BreakerHalfOpen
	// BreakerOpen refuses every call with circuit-open.
	BreakerOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

func stateOf(s circuitbreaker.State) BreakerState {
	switch s {
	case circuitbreaker.OpenState:
		return BreakerOpen
	case circuitbreaker.HalfOpenState:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// Breaker is one circuit breaker in use and its state.
type Breaker struct {
	Dest  Destination
	State BreakerState
}

// breakerEntry is a destination's breaker as the state cache keeps it.
type breakerEntry struct {
	dest Destination
	// service is the service whose policy configured it (for a
	// NATS-native destination, the gateway route's; for an external
	// host, "egress:" and its entry: policyOwner), and config that
	// configuration (breakerConfig).
	service, config string
	cb              circuitbreaker.CircuitBreaker[*pipeline.Reply]
}

// breakerConfig is the configuration of the breaker p asks for, as the
// state cache keys it; "" when p has none.
func breakerConfig(p policies.Policy) string {
	cb := p.CircuitBreaker
	if cb == nil || !*cb.Enabled {
		return ""
	}
	return fmt.Sprint(cb.FailureRatio.Fraction(), cb.Window.D(), *cb.MinRequests, cb.OpenFor.D(), *cb.HalfOpenProbes)
}

// newBreaker builds the breaker of dest for cb, telling the observer of
// its changes of state.
func (m *middleware) newBreaker(cb *policies.CircuitBreaker, dest Destination, service, config string) *breakerEntry {
	b := circuitbreaker.NewBuilder[*pipeline.Reply]().
		HandleIf(destinationFailed).
		WithFailureRateThreshold(min(cb.FailureRatio.Fraction(), 1), uint(max(*cb.MinRequests, 0)), cb.Window.D()).
		WithDelay(cb.OpenFor.D()).
		WithSuccessThreshold(uint(max(*cb.HalfOpenProbes, 1)))
	if obs := m.obs; obs != nil {
		b = b.OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			obs.BreakerChanged(dest, stateOf(e.OldState), stateOf(e.NewState))
		})
	}
	return &breakerEntry{dest: dest, service: service, config: config, cb: b.Build()}
}

// breakers lists the breakers in use: those in the state cache that the
// current mesh file still configures for their destination (for the
// service's own policy or one of its routes'). A breaker the file no
// longer asks for (its settings changed, or it was turned off) is left
// out though the cache still holds it, and one the bounded cache dropped
// is gone.
func (m *middleware) breakers() []Breaker {
	var file *policies.File
	if m.src != nil {
		file, _ = m.src.Current()
	}
	m.mu.Lock()
	var entries []*breakerEntry
	for k, s := range m.states {
		if k.kind == kindBreaker {
			entries = append(entries, s.(*breakerEntry))
		}
	}
	m.mu.Unlock()
	// The configurations of each service under this file, kept until the
	// file changes: a scrape then costs no policy merges.
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	if m.cfgFile != file || m.cfgs == nil || len(m.cfgs) > maxStates {
		m.cfgFile, m.cfgs = file, map[string]map[string]bool{}
	}
	list := make([]Breaker, 0, len(entries))
	for _, e := range entries {
		cfgs, ok := m.cfgs[e.service]
		if !ok {
			cfgs = breakerConfigs(file, e.service)
			m.cfgs[e.service] = cfgs
		}
		if cfgs[e.config] {
			list = append(list, Breaker{Dest: e.dest, State: stateOf(e.cb.State())})
		}
	}
	return list
}

// breakerConfigs is the set of breaker configurations f gives the calls
// to service: its own policy's and its routes'.
func breakerConfigs(f *policies.File, service string) map[string]bool {
	cfgs := map[string]bool{}
	add := func(p policies.Policy) {
		if c := breakerConfig(p); c != "" {
			cfgs[c] = true
		}
	}
	if entry, ok := strings.CutPrefix(service, egressOwner); ok {
		// An external host has a breaker while the file lists it.
		if f != nil && f.Egress != nil && f.Egress.Hosts[entry] != nil {
			add(f.EgressPolicy(entry))
		}
		return cfgs
	}
	add(f.Policy(service, ""))
	if f != nil {
		if s := f.Services[service]; s != nil {
			for _, r := range s.Routes {
				add(f.Policy(service, r.Name))
			}
		}
	}
	return cfgs
}
