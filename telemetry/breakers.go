package telemetry

import (
	"context"
	"sort"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/wire"
)

// BreakerState is a circuit breaker's state, as the metrics label it.
type BreakerState string

// The states of a circuit breaker.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerHalfOpen BreakerState = "half_open"
	BreakerOpen     BreakerState = "open"
)

// breakerStates are the states in the order the series keep them.
var breakerStates = [...]BreakerState{BreakerClosed, BreakerHalfOpen, BreakerOpen}

func stateIndex(s BreakerState) int {
	for i, st := range breakerStates {
		if st == s {
			return i
		}
	}
	return -1
}

// Breaker is one circuit breaker on a component's outbound calls, and its
// state.
type Breaker struct {
	// Service and Subset name the destination (Subset "" or
	// wire.AnySubset: any instance); Subject is instead the NATS-native
	// subject of an edge gateway's route (callee "nats:SUBJECT" in the
	// metrics). Egress is instead an external host as the mesh file
	// lists it (callee "egress:HOST").
	Service, Subset, Subject, Egress string
	State                            BreakerState
}

func (b Breaker) callee() string {
	switch {
	case b.Subject != "":
		return "nats:" + b.Subject
	case b.Egress != "":
		return meshstat.EgressPrefix + b.Egress
	}
	return b.Service
}

// ObserveBreakers makes list a source of the natsmesh_outbound_breaker_state
// gauge, the breakers of caller's outbound calls: t calls it at each
// collection (a scrape of /metrics), so a breaker list no longer returns
// is no longer shown. list must be safe for concurrent use. The returned
// function removes the source (the next collection no longer calls list;
// calling it again does nothing): the owner of the breakers calls it when
// it shuts down. Package internal/chain adds the resilience policies'
// breakers, one source per pipeline, removed at the agent's or gateway's
// Shutdown.
func (t *Telemetry) ObserveBreakers(caller string, list func() []Breaker) (unregister func()) {
	if t == nil || list == nil {
		return func() {}
	}
	return t.m.breakers.sources.add(&breakerSource{caller, list})
}

// BreakerChanged counts a change of state of one of caller's breakers,
// into br.State: natsmesh_outbound_breaker_transitions_total{to=...}.
func (t *Telemetry) BreakerChanged(caller string, br Breaker) {
	if t == nil {
		return
	}
	i := stateIndex(br.State)
	if i < 0 {
		return
	}
	b := &t.m.breakers
	s := b.dests.get(breakerKey{caller, br.callee(), wire.NormalSubset(br.Subset)}, newBreakerSeries)
	b.transitions.Add(context.Background(), 1, s.to[i]...)
}

type breakerSource struct {
	caller string
	list   func() []Breaker
}

// breakerKey is a destination's breakers: from one caller to one callee
// and subset.
type breakerKey struct{ caller, callee, subset string }

// breakerSeries are the series of one destination's breakers: one per
// state for the gauge, one per new state for the transitions.
type breakerSeries struct {
	key   breakerKey
	state [len(breakerStates)][]metric.ObserveOption
	to    [len(breakerStates)][]metric.AddOption
}

func newBreakerSeries(k breakerKey) *breakerSeries {
	s := &breakerSeries{key: k}
	for i, st := range breakerStates {
		labels := []attribute.KeyValue{attribute.String(labelCaller, k.caller), attribute.String(labelCallee, k.callee),
			attribute.String(labelSubset, k.subset)}
		s.state[i] = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(append(labels, attribute.String(labelState, string(st)))...))}
		s.to[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append(labels, attribute.String(labelTo, string(st)))...))}
	}
	return s
}

// breakerMetrics are the circuit breakers' instruments and series. The
// destinations are bounded as the edges are: past maxEdges, the rest are
// counted under callee "_other".
type breakerMetrics struct {
	state       metric.Int64ObservableGauge
	transitions metric.Int64Counter
	dests       table[breakerKey, breakerSeries]

	sources sourceList[breakerSource]
}

func (b *breakerMetrics) init(m metric.Meter, check func(error)) {
	var err error
	b.state, err = m.Int64ObservableGauge("natsmesh.outbound.breaker.state",
		metric.WithDescription("The circuit breakers of outbound calls by destination and state: 1 for the state the "+
			"destination's breaker is in, 0 for the others (a destination whose routes configure different breakers "+
			"counts each, and callee _other counts many)."))
	check(err)
	b.transitions, err = m.Int64Counter("natsmesh.outbound.breaker.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of state of the circuit breakers of outbound calls, by the state entered."))
	check(err)
	b.dests.limit = maxEdges
	b.dests.overflow = func(k breakerKey) breakerKey { return breakerKey{caller: k.caller, callee: overflowCallee} }
}

// observe reports every source's breakers: per destination, how many are
// in each state.
func (b *breakerMetrics) observe(o metric.Observer) {
	for s, n := range b.count() {
		for i := range breakerStates {
			o.ObserveInt64(b.state, n[i], s.state[i]...)
		}
	}
}

// count lists every source's breakers and counts them by destination (as
// bounded) and state.
func (b *breakerMetrics) count() map[*breakerSeries]*[len(breakerStates)]int64 {
	sources := b.sources.all()
	if len(sources) == 0 {
		return nil
	}
	counts := map[*breakerSeries]*[len(breakerStates)]int64{}
	for _, src := range sources {
		for _, br := range src.list() {
			i := stateIndex(br.State)
			if i < 0 {
				continue
			}
			s := b.dests.get(breakerKey{src.caller, br.callee(), wire.NormalSubset(br.Subset)}, newBreakerSeries)
			n := counts[s]
			if n == nil {
				n = new([len(breakerStates)]int64)
				counts[s] = n
			}
			n[i]++
		}
	}
	return counts
}

// snapshot lists the breakers that are not closed, in a stable order.
func (b *breakerMetrics) snapshot() []meshstat.Breaker {
	var out []meshstat.Breaker
	for s, n := range b.count() {
		for i, st := range breakerStates {
			if st != BreakerClosed && n[i] > 0 {
				out = append(out, meshstat.Breaker{Callee: s.key.callee, Subset: s.key.subset, State: string(st), Count: uint64(n[i])})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Callee != y.Callee {
			return x.Callee < y.Callee
		}
		return x.Subset < y.Subset || x.Subset == y.Subset && x.State < y.State
	})
	return out
}
