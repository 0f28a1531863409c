package telemetry

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/wire"
)

// Metric label names. Every value is bounded: service, caller and subset
// names come from validated subjects or route tables, the route is the name
// of a route of the mesh file, the status a class, the mesh error one of the
// known kinds; no path, ID or header value is ever a label. A component
// that sees more than maxEdges distinct edges (a client calling made-up
// service names, say) counts the rest under callee "_other".
const (
	labelCaller    = "caller"
	labelCallee    = "callee"
	labelSubset    = "subset"
	labelRoute     = "route"
	labelProto     = "proto"
	labelStatus    = "status_class"
	labelMeshError = "mesh_error"
	labelService   = "service"
	labelState     = "state"
	labelTo        = "to"
)

// maxEdges bounds the edges per direction, and so the series per metric.
const maxEdges = 500

// overflowCallee is the callee the edges past maxEdges are counted under.
const overflowCallee = "_other"

// edgeKey names an edge of the call graph: one caller, one callee, the
// subset and route the calls took, and their protocol. Inbound, the callee
// is the local service and the route is empty.
type edgeKey struct {
	caller, callee, subset, route string
	proto                         wire.Proto
}

// edge is the cumulative record of the calls along one edge: the
// snapshot's counters and the series of each outcome seen, all atomic, so
// recording a call takes no lock.
type edge struct {
	key        edgeKey
	attrs      []attribute.KeyValue
	edgeOpts   []metric.AddOption // edge labels only: retries, hedges
	requests   atomic.Int64
	errors     atomic.Int64
	meshErrors [numKinds]atomic.Int64
	buckets    [numBuckets]atomic.Int64

	// series holds each outcome's series once seen, by outcome ID; all
	// lists them for the metrics callback.
	series [numOutcome]atomic.Pointer[series]
	mu     sync.Mutex
	all    atomic.Pointer[[]*series]
}

// series is one edge and outcome: the count of its calls, read by the
// metrics callback at each scrape (an observable counter costs a call one
// atomic add, where a synchronous one costs an SDK measurement), and the
// options that put a measurement in it.
type series struct {
	calls atomic.Int64
	err   bool
	rec   []metric.RecordOption
	obs   []metric.ObserveOption
}

func newEdge(k edgeKey, inbound bool) *edge {
	attrs := []attribute.KeyValue{
		attribute.String(labelCaller, k.caller),
		attribute.String(labelCallee, k.callee),
		attribute.String(labelSubset, k.subset),
		attribute.String(labelProto, string(k.proto)),
	}
	if !inbound {
		attrs = append(attrs, attribute.String(labelRoute, k.route))
	}
	set := attribute.NewSet(attrs...)
	return &edge{key: k, attrs: attrs, edgeOpts: []metric.AddOption{metric.WithAttributeSet(set)}}
}

func (e *edge) seriesOf(o outcome) *series {
	id := o.id()
	if s := e.series[id].Load(); s != nil {
		return s
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.series[id].Load(); s != nil {
		return s
	}
	attrs := append(append([]attribute.KeyValue(nil), e.attrs...),
		attribute.String(labelStatus, statusLabels[o.status]),
		attribute.String(labelMeshError, kindLabel(o.kind)))
	opt := metric.WithAttributeSet(attribute.NewSet(attrs...))
	s := &series{err: o.err, rec: []metric.RecordOption{opt}, obs: []metric.ObserveOption{opt}}
	var all []*series
	if p := e.all.Load(); p != nil {
		all = append(all, *p...)
	}
	all = append(all, s)
	e.all.Store(&all)
	e.series[id].Store(s)
	return s
}

func (e *edge) eachSeries(f func(*series)) {
	if p := e.all.Load(); p != nil {
		for _, s := range *p {
			f(s)
		}
	}
}

// table is a copy-on-write map: lookups are one atomic load and a map
// read, with no lock and no allocation; adding a key (once per edge) copies
// the map.
type table[K comparable, V any] struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[K]*V]
	limit int
	// overflow maps a key past the limit to the key it is counted under.
	overflow func(K) K
}

func (t *table[K, V]) get(k K, mk func(K) *V) *V {
	if m := t.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[K]*V
	if m := t.m.Load(); m != nil {
		old = *m
		if v, ok := old[k]; ok {
			return v
		}
	}
	if t.limit > 0 && len(old) >= t.limit && t.overflow != nil {
		k = t.overflow(k)
		if v, ok := old[k]; ok {
			return v
		}
	}
	m := make(map[K]*V, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	v := mk(k)
	m[k] = v
	t.m.Store(&m)
	return v
}

func (t *table[K, V]) each(f func(K, *V)) {
	if m := t.m.Load(); m != nil {
		for k, v := range *m {
			f(k, v)
		}
	}
}

// gaugeVal is a gauge series: its value and the option that labels it.
type gaugeVal struct {
	v    atomic.Int64
	opts []metric.ObserveOption
}

type flightKey struct {
	caller, callee string
	proto          wire.Proto
}

type servingKey struct{ service, subset string }

// direction is the instruments and edges of one direction of calls.
type direction struct {
	inbound  bool
	requests metric.Int64ObservableCounter
	errors   metric.Int64ObservableCounter
	duration metric.Float64Histogram
	active   metric.Int64ObservableUpDownCounter
	edges    table[edgeKey, edge]
	flight   table[flightKey, gaugeVal]
}

type metrics struct {
	out, in  direction
	retries  metric.Int64Counter
	hedges   metric.Int64Counter
	breakers breakerMetrics
	// The inbound dispatches' concurrency limits.
	admission admissionMetrics
	// The inbound instance's state (natsmesh_serving, natsmesh_ejected,
	// natsmesh_healthy), set by the agent.
	serving, ejected, healthy flagGauge
}

// flagGauge is a gauge of 0 or 1 per instance (service and subset).
type flagGauge struct {
	inst metric.Int64ObservableGauge
	vals table[servingKey, gaugeVal]
}

func (f *flagGauge) init(m metric.Meter, name, description string, check func(error)) {
	var err error
	f.inst, err = m.Int64ObservableGauge(name, metric.WithDescription(description))
	check(err)
}

func (f *flagGauge) set(service, subset string, on bool) {
	g := f.vals.get(servingKey{service, subset}, func(k servingKey) *gaugeVal {
		set := attribute.NewSet(attribute.String(labelService, k.service), attribute.String(labelSubset, k.subset))
		return &gaugeVal{opts: []metric.ObserveOption{metric.WithAttributeSet(set)}}
	})
	var v int64
	if on {
		v = 1
	}
	g.v.Store(v)
}

func (f *flagGauge) observe(o metric.Observer) {
	f.vals.each(func(_ servingKey, g *gaugeVal) { o.ObserveInt64(f.inst, g.v.Load(), g.opts...) })
}

func newMetrics(m metric.Meter) (*metrics, error) {
	ms := &metrics{}
	ms.in.inbound = true
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range []*direction{&ms.out, &ms.in} {
		name, what := "natsmesh.outbound.", "outbound calls made"
		if d.inbound {
			name, what = "natsmesh.inbound.", "inbound calls served"
		}
		var err error
		d.requests, err = m.Int64ObservableCounter(name+"requests", metric.WithUnit("{request}"),
			metric.WithDescription("Mesh "+what+", by outcome."))
		check(err)
		d.errors, err = m.Int64ObservableCounter(name+"errors", metric.WithUnit("{request}"),
			metric.WithDescription("Mesh "+what+" that failed: a mesh error, or the service's 5xx or gRPC server-error code."))
		check(err)
		d.duration, err = m.Float64Histogram(name+"duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of the mesh "+what+", as the agent saw them."),
			metric.WithExplicitBucketBoundaries(boundsS...))
		check(err)
		d.active, err = m.Int64ObservableUpDownCounter(name+"active", metric.WithUnit("{request}"),
			metric.WithDescription("Mesh "+what+" in flight now."))
		check(err)
		d.edges.limit = maxEdges
		d.edges.overflow = func(k edgeKey) edgeKey {
			return edgeKey{caller: k.caller, callee: overflowCallee, proto: k.proto}
		}
		d.flight.limit = maxEdges
		d.flight.overflow = func(k flightKey) flightKey {
			return flightKey{caller: k.caller, callee: overflowCallee, proto: k.proto}
		}
	}
	var err error
	ms.retries, err = m.Int64Counter("natsmesh.outbound.retries", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts of outbound calls made after an earlier attempt failed."))
	check(err)
	ms.hedges, err = m.Int64Counter("natsmesh.outbound.hedges", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts of outbound calls made while an earlier attempt was still in flight."))
	check(err)
	ms.serving.init(m, "natsmesh.serving",
		"1 while the instance is in its queue groups (it passes its health checks), else 0.", check)
	ms.ejected.init(m, "natsmesh.ejected",
		"1 while passive health (outlier detection) keeps the instance out of its queue groups, else 0.", check)
	ms.healthy.init(m, "natsmesh.healthy",
		"1 while the instance's local service passes its health checks (the last check passed), else 0; "+
			"absent when the agent runs no health checks.", check)
	ms.breakers.init(m, check)
	ms.admission.init(m, check)
	if len(errs) == 0 {
		_, err = m.RegisterCallback(ms.observe, ms.out.active, ms.in.active,
			ms.serving.inst, ms.ejected.inst, ms.healthy.inst, ms.breakers.state, ms.admission.limit, ms.admission.refused,
			ms.out.requests, ms.out.errors, ms.in.requests, ms.in.errors)
		check(err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("telemetry: creating instruments: %v", errs)
	}
	return ms, nil
}

func (ms *metrics) observe(_ context.Context, o metric.Observer) error {
	for _, d := range []*direction{&ms.out, &ms.in} {
		d.flight.each(func(_ flightKey, g *gaugeVal) { o.ObserveInt64(d.active, g.v.Load(), g.opts...) })
		d.edges.each(func(_ edgeKey, e *edge) {
			e.eachSeries(func(s *series) {
				n := s.calls.Load()
				o.ObserveInt64(d.requests, n, s.obs...)
				if s.err {
					o.ObserveInt64(d.errors, n, s.obs...)
				}
			})
		})
	}
	ms.serving.observe(o)
	ms.ejected.observe(o)
	ms.healthy.observe(o)
	ms.breakers.observe(o)
	ms.admission.observe(o)
	return nil
}

// inFlight returns the gauge of calls in flight between caller and callee.
func (d *direction) inFlight(caller, callee string, proto wire.Proto) *atomic.Int64 {
	g := d.flight.get(flightKey{caller, callee, proto}, func(k flightKey) *gaugeVal {
		set := attribute.NewSet(attribute.String(labelCaller, k.caller), attribute.String(labelCallee, k.callee),
			attribute.String(labelProto, string(k.proto)))
		return &gaugeVal{opts: []metric.ObserveOption{metric.WithAttributeSet(set)}}
	})
	return &g.v
}

func (d *direction) edge(k edgeKey) *edge {
	return d.edges.get(k, func(k edgeKey) *edge { return newEdge(k, d.inbound) })
}

// record counts one call along e that ended as o after dur.
func (d *direction) record(ctx context.Context, e *edge, o outcome, dur time.Duration) {
	e.requests.Add(1)
	if o.err {
		e.errors.Add(1)
	}
	if o.kind > 0 {
		e.meshErrors[o.kind].Add(1)
	}
	e.buckets[bucket(dur)].Add(1)
	s := e.seriesOf(o)
	s.calls.Add(1)
	d.duration.Record(ctx, dur.Seconds(), s.rec...)
}

// Snapshot is the state of a mesh component and the cumulative counts of
// the calls it made and served since it started, by edge: the "natsmesh"
// field of the component's $SRV.STATS answer, which `natsmesh stat` and
// the dashboard read. The schema has one definition, package meshstat's
// (docs/observability.md, "Stats schema"); this is it.
type Snapshot = meshstat.Snapshot

// addEdge adds e's counts to s.
func addEdge(s *meshstat.Edge, e *edge) {
	s.Requests += uint64(e.requests.Load())
	s.Errors += uint64(e.errors.Load())
	for i := 1; i < numKinds; i++ {
		if n := e.meshErrors[i].Load(); n > 0 {
			s.MeshErrors[kindLabel(i)] += uint64(n)
		}
	}
	for i := range s.Latency.Counts {
		s.Latency.Counts[i] += uint64(e.buckets[i].Load())
	}
}

// newSnapshotEdge is an edge of a snapshot with no counts yet.
func newSnapshotEdge() meshstat.Edge {
	return meshstat.Edge{MeshErrors: map[string]uint64{}, Latency: meshstat.Histogram{BoundsMS: boundsMS, Counts: make([]uint64, numBuckets)}}
}

// Snapshot returns the cumulative counts of t's calls, by edge, in a stable
// order, with Now set; the component fills in who it is. Edges of the
// Prometheus metrics that differ only by route (outbound) or subset
// (inbound) are one edge here. A nil t has no edges.
func (t *Telemetry) Snapshot() Snapshot {
	s := Snapshot{Now: time.Now(), Inbound: []meshstat.Edge{}, Outbound: []meshstat.Edge{}}
	if t == nil {
		return s
	}
	type inKey struct{ caller, proto string }
	in := map[inKey]*meshstat.Edge{}
	t.m.in.edges.each(func(k edgeKey, e *edge) {
		ik := inKey{k.caller, string(k.proto)}
		ie := in[ik]
		if ie == nil {
			ne := newSnapshotEdge()
			ne.Caller, ne.Proto = k.caller, string(k.proto)
			ie = &ne
			in[ik] = ie
		}
		addEdge(ie, e)
	})
	type outKey struct{ callee, subset, proto string }
	out := map[outKey]*meshstat.Edge{}
	t.m.out.edges.each(func(k edgeKey, e *edge) {
		ok := outKey{k.callee, k.subset, string(k.proto)}
		oe := out[ok]
		if oe == nil {
			ne := newSnapshotEdge()
			ne.Callee, ne.Subset, ne.Proto = k.callee, k.subset, string(k.proto)
			oe = &ne
			out[ok] = oe
		}
		addEdge(oe, e)
	})
	s.Breakers = t.m.breakers.snapshot()
	for _, e := range in {
		s.Inbound = append(s.Inbound, *e)
	}
	for _, e := range out {
		s.Outbound = append(s.Outbound, *e)
	}
	sort.Slice(s.Inbound, func(i, j int) bool {
		a, b := s.Inbound[i], s.Inbound[j]
		return a.Caller < b.Caller || a.Caller == b.Caller && a.Proto < b.Proto
	})
	sort.Slice(s.Outbound, func(i, j int) bool {
		a, b := s.Outbound[i], s.Outbound[j]
		if a.Callee != b.Callee {
			return a.Callee < b.Callee
		}
		return a.Subset < b.Subset || a.Subset == b.Subset && a.Proto < b.Proto
	})
	return s
}
