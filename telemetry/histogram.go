package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The latency histograms (natsmesh_outbound_duration_seconds and
// natsmesh_inbound_duration_seconds) are kept like the counters: atomic
// bucket counts and a sum on each series, which a collector of the
// component's registry reads at each scrape. OpenTelemetry has no
// asynchronous histogram, and its SDK's synchronous Record normalizes the
// attribute set and looks up its aggregate on every call: about 2 µs per
// call per agent, most of what metrics cost (docs/decisions.md). The page
// reads as the SDK's exporter wrote it: the same names, help, labels and
// buckets.

// histogramLabels are the histograms' labels, in the order of
// series.labels; inbound series have no route.
var histogramLabels = []string{labelCaller, labelCallee, labelSubset, labelProto, labelRoute, labelStatus, labelMeshError}

// histogramDesc describes the latency histogram of one direction.
func histogramDesc(inbound bool, help string) *prometheus.Desc {
	if inbound {
		labels := make([]string, 0, len(histogramLabels)-1)
		for _, l := range histogramLabels {
			if l != labelRoute {
				labels = append(labels, l)
			}
		}
		return prometheus.NewDesc("natsmesh_inbound_duration_seconds", help, labels, nil)
	}
	return prometheus.NewDesc("natsmesh_outbound_duration_seconds", help, histogramLabels, nil)
}

// histograms is the prometheus.Collector of the latency histograms of m.
type histograms struct{ m *metrics }

// Describe implements prometheus.Collector.
func (h histograms) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.m.out.duration
	ch <- h.m.in.duration
}

// Collect implements prometheus.Collector: one histogram per series.
func (h histograms) Collect(ch chan<- prometheus.Metric) {
	for _, d := range []*direction{&h.m.out, &h.m.in} {
		d.edges.each(func(_ edgeKey, e *edge) {
			e.eachSeries(func(s *series) {
				ch <- s.histogram(d.duration, d.inbound)
			})
		})
	}
}

// histogram is the series' histogram now, cumulative as Prometheus has it.
// Its count is the sum of its buckets, so the two agree even while calls
// are being recorded.
func (s *series) histogram(desc *prometheus.Desc, inbound bool) prometheus.Metric {
	cumulative := make(map[float64]uint64, len(boundsS))
	var count uint64
	for i := range s.buckets {
		count += uint64(s.buckets[i].Load())
		if i < len(boundsS) {
			cumulative[boundsS[i]] = count
		}
	}
	labels := s.labels
	if inbound {
		// Without the route (index 4), as histogramDesc has it.
		labels = append(append(make([]string, 0, len(labels)-1), labels[:4]...), labels[5:]...)
	}
	return prometheus.MustNewConstHistogram(desc, count, float64(s.sumNS.Load())/1e9, cumulative, labels...)
}
