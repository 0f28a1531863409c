package telemetry

import (
	"slices"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Admission is an inbound dispatch's concurrency limit, as the metrics
// show it (pipeline.Inbound is one). Its methods must be safe for
// concurrent use.
type Admission interface {
	// Limit is the limit now (the adaptive limit's current value, or a
	// fixed bound); 0 for none.
	Limit() int
	// Refused counts the calls answered overloaded at the limit.
	Refused() uint64
}

// ObserveAdmission makes a the source of the natsmesh_inbound_limit gauge
// and the natsmesh_inbound_refused_total counter of the instance of
// service (and subset), read at each collection. The returned function
// removes the source (calling it again does nothing): the agent calls it
// when it shuts down.
func (t *Telemetry) ObserveAdmission(service, subset string, a Admission) (unregister func()) {
	if t == nil || a == nil {
		return func() {}
	}
	set := attribute.NewSet(attribute.String(labelService, service), attribute.String(labelSubset, subset))
	return t.m.admission.sources.add(&admissionSource{a: a, opts: []metric.ObserveOption{metric.WithAttributeSet(set)}})
}

// sourceList is the sources a collection reads (the breakers' lists, the
// inbound limits), each added with the function that removes it.
type sourceList[T any] struct {
	mu   sync.Mutex
	list []*T // replaced, never changed in place: all's callers iterate it unlocked
}

// add adds src; the returned function removes it, once.
func (l *sourceList[T]) add(src *T) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(slices.Clip(l.list), src)
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.list = slices.DeleteFunc(slices.Clone(l.list), func(s *T) bool { return s == src })
		})
	}
}

// all is the sources now.
func (l *sourceList[T]) all() []*T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.list
}

type admissionSource struct {
	a    Admission
	opts []metric.ObserveOption
}

// admissionMetrics are the instruments of the inbound concurrency limits
// and their sources.
type admissionMetrics struct {
	limit   metric.Int64ObservableGauge
	refused metric.Int64ObservableCounter

	sources sourceList[admissionSource]
}

func (m *admissionMetrics) init(meter metric.Meter, check func(error)) {
	var err error
	m.limit, err = meter.Int64ObservableGauge("natsmesh.inbound.limit", metric.WithUnit("{request}"),
		metric.WithDescription("The instance's concurrency limit now: past it, calls are answered overloaded at once. "+
			"Adaptive by default (it follows the local service's latency), else the fixed --max-concurrent; 0: none."))
	check(err)
	m.refused, err = meter.Int64ObservableCounter("natsmesh.inbound.refused", metric.WithUnit("{request}"),
		metric.WithDescription("Calls the instance answered overloaded at its concurrency limit, before any middleware."))
	check(err)
}

func (m *admissionMetrics) observe(o metric.Observer) {
	for _, s := range m.sources.all() {
		o.ObserveInt64(m.limit, int64(s.a.Limit()), s.opts...)
		o.ObserveInt64(m.refused, int64(s.a.Refused()), s.opts...)
	}
}
