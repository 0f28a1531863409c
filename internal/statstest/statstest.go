// Package statstest runs stand-in mesh instances for tests of meshstat,
// natsmesh stat and the dashboard: NATS responders on $SRV.STATS that
// answer like agents and gateways do (docs/observability.md, "Stats
// schema"), with counters that advance by a fixed amount per answer, so two
// gatherings always see the same traffic. They are test services on a real
// broker, not mocks of NATS.
package statstest

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/meshstat"
)

// Bounds are the latency bucket bounds of the stand-ins, in milliseconds.
var Bounds = []float64{0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}

// Epoch is when every stand-in started and took its first snapshot.
var Epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// Flow is one inbound or outbound edge of an instance and the calls it
// gains per step.
type Flow struct {
	Inbound bool
	// Peer is the caller (inbound) or the callee (outbound); Subset is the
	// subset an outbound call asked for.
	Peer, Subset, Proto string
	Requests, Errors    uint64
	MeshErrors          map[string]uint64
	// Latency is the per-bucket counts gained per step, len(Bounds)+1
	// entries summing to Requests.
	Latency []uint64
}

// Instance is one stand-in. Its snapshot at step k (its k-th answer,
// from 0) is taken at Epoch + k*Step and holds k times each flow.
type Instance struct {
	Service, Subset, ID, Kind string
	Serving                   bool
	Step                      time.Duration // default 2s
	Flows                     []Flow
}

// Snapshot is i's snapshot at step k.
func (i Instance) Snapshot(k int) meshstat.Snapshot {
	step := i.Step
	if step == 0 {
		step = 2 * time.Second
	}
	s := meshstat.Snapshot{
		Service: i.Service, Subset: i.Subset, ID: i.ID, Kind: i.Kind, Serving: i.Serving,
		Started: Epoch, Now: Epoch.Add(time.Duration(k) * step),
		Inbound: []meshstat.Edge{}, Outbound: []meshstat.Edge{},
	}
	n := uint64(k)
	for _, f := range i.Flows {
		e := meshstat.Edge{Proto: f.Proto, Requests: n * f.Requests, Errors: n * f.Errors, MeshErrors: map[string]uint64{},
			Latency: meshstat.Histogram{BoundsMS: Bounds, Counts: make([]uint64, len(Bounds)+1)}}
		for _, kind := range slices.Sorted(maps.Keys(f.MeshErrors)) {
			e.MeshErrors[kind] = n * f.MeshErrors[kind]
		}
		for b, c := range f.Latency {
			e.Latency.Counts[b] = n * c
		}
		if f.Inbound {
			e.Caller = f.Peer
			s.Inbound = append(s.Inbound, e)
		} else {
			e.Callee, e.Subset = f.Peer, f.Subset
			s.Outbound = append(s.Outbound, e)
		}
	}
	return s
}

// Answer is i's $SRV.STATS answer at step k: a micro stats response with
// the "natsmesh" field.
func (i Instance) Answer(k int) []byte {
	data, err := json.Marshal(map[string]any{
		"type": "io.nats.micro.v1.stats_response", "name": i.Service, "id": i.ID, "version": "1.0.0",
		"started": Epoch, "endpoints": []any{}, "natsmesh": i.Snapshot(k),
	})
	if err != nil {
		panic(err)
	}
	return data
}

// Serve answers $SRV.STATS on nc for each instance until the test ends,
// each instance advancing one step per answer.
func Serve(t testing.TB, nc *nats.Conn, instances ...Instance) {
	t.Helper()
	for _, in := range instances {
		var mu sync.Mutex
		k := 0
		sub, err := nc.Subscribe("$SRV.STATS", func(m *nats.Msg) {
			mu.Lock()
			data := in.Answer(k)
			k++
			mu.Unlock()
			m.Respond(data)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// lat spreads n calls over the buckets around center (an index of Bounds):
// most in it, some either side, a few far above.
func lat(n uint64, center int) []uint64 {
	c := make([]uint64, len(Bounds)+1)
	tail := n / 50
	side := n / 5
	c[max(center-1, 0)] += side
	c[min(center+1, len(Bounds))] += side
	c[min(center+3, len(Bounds))] += tail
	c[center] += n - 2*side - tail
	return c
}

// Shop is a small mesh: the edge gateway calls orders and the clock;
// orders and web call inventory, which has subsets v1 (two instances) and
// v2; web also calls payments, which has no instance (no-responders).
func Shop() []Instance {
	return []Instance{
		{Service: "bridge", ID: "gw1", Kind: meshstat.KindBridge, Serving: true, Flows: []Flow{
			{Inbound: true, Peer: "", Proto: "http", Requests: 60, Errors: 1, MeshErrors: map[string]uint64{"timeout": 1}, Latency: lat(60, 5)},
			{Peer: "orders", Proto: "http", Requests: 40, Errors: 1, MeshErrors: map[string]uint64{"timeout": 1}, Latency: lat(40, 5)},
			{Peer: "inventory", Proto: "http", Requests: 20, Latency: lat(20, 3)},
		}},
		{Service: "orders", ID: "ord1", Kind: meshstat.KindAgent, Serving: true, Flows: []Flow{
			{Inbound: true, Peer: "bridge", Proto: "http", Requests: 40, Errors: 1, Latency: lat(40, 4)},
			{Peer: "inventory", Proto: "http", Requests: 40, Latency: lat(40, 2)},
		}},
		{Service: "inventory", Subset: "v1", ID: "inv1a", Kind: meshstat.KindAgent, Serving: true, Flows: []Flow{
			{Inbound: true, Peer: "orders", Proto: "http", Requests: 18, Latency: lat(18, 1)},
			{Inbound: true, Peer: "bridge", Proto: "http", Requests: 8, Latency: lat(8, 1)},
			{Inbound: true, Peer: "web", Proto: "http", Requests: 4, Latency: lat(4, 1)},
		}},
		{Service: "inventory", Subset: "v1", ID: "inv1b", Kind: meshstat.KindAgent, Serving: true, Flows: []Flow{
			{Inbound: true, Peer: "orders", Proto: "http", Requests: 18, Latency: lat(18, 1)},
			{Inbound: true, Peer: "bridge", Proto: "http", Requests: 8, Latency: lat(8, 1)},
			{Inbound: true, Peer: "web", Proto: "http", Requests: 4, Latency: lat(4, 1)},
		}},
		{Service: "inventory", Subset: "v2", ID: "inv2", Kind: meshstat.KindAgent, Serving: false, Flows: []Flow{
			{Inbound: true, Peer: "orders", Proto: "http", Requests: 4, Errors: 2, MeshErrors: map[string]uint64{"overloaded": 2}, Latency: lat(4, 6)},
			{Inbound: true, Peer: "bridge", Proto: "http", Requests: 4, Latency: lat(4, 6)},
		}},
		{Service: "web", ID: "web1", Kind: meshstat.KindAgent, Serving: true, Flows: []Flow{
			{Peer: "inventory", Subset: "v1", Proto: "http", Requests: 8, Latency: lat(8, 2)},
			{Peer: "payments", Proto: "http", Requests: 2, Errors: 2, MeshErrors: map[string]uint64{"no-responders": 2}, Latency: lat(2, 0)},
		}},
	}
}
