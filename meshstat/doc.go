// Package meshstat reads the mesh's golden metrics over NATS: it gathers
// the counters every agent and edge gateway publishes in its $SRV.STATS
// answer (the "natsmesh" field, docs/observability.md "Stats schema"), and
// turns two samples into rates.
//
// The parts, in the order data flows:
//
//   - [Gather] sends one $SRV.STATS request and collects every answer until
//     a quiet period passes (scatter-gather), decoding each into a
//     [Snapshot]: the cumulative counters of one instance. Plain micro
//     services (without the "natsmesh" field) become snapshots of kind
//     "micro" built from their endpoint counters, without latency.
//   - [Compute] takes two [Sample]s and returns a [Report]: per service its
//     instances (and how many serve), requests per second, success rate and
//     p50/p99 latency, split by subset and by caller, and the service graph's
//     edges caller -> callee with the same golden metrics. It is a pure
//     function; so are [Histogram.Quantile] and [Merge].
//   - [Sampler] keeps the previous sample, so each [Sampler.Next] reports the
//     window since the last call: natsmesh stat and the dashboard use it.
//   - [WriteTable] renders a Report as the table natsmesh stat prints.
//
// Rates come from two snapshots of the same instance id as Δcounter / Δnow,
// with now taken by the instance's own clock, so skew between machines does
// not matter. An instance seen in only one of the two samples counts as an
// instance but adds no traffic to that window.
package meshstat
