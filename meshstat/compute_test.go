package meshstat_test

import (
	"math"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/statstest"
	"github.com/natsmesh/natsmesh/meshstat"
)

func sample(instances []statstest.Instance, k int) meshstat.Sample {
	s := meshstat.Sample{At: statstest.Epoch.Add(time.Duration(k) * 2 * time.Second)}
	for _, in := range instances {
		s.Snapshots = append(s.Snapshots, in.Snapshot(k))
	}
	return s
}

func service(t *testing.T, r meshstat.Report, name string) meshstat.Service {
	t.Helper()
	for _, s := range r.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %q in %+v", name, r.Services)
	return meshstat.Service{}
}

func edge(t *testing.T, r meshstat.Report, from, to string) meshstat.EdgeStats {
	t.Helper()
	for _, e := range r.Edges {
		if e.Caller == from && e.Callee == to {
			return e
		}
	}
	t.Fatalf("no edge %s -> %s in %+v", from, to, r.Edges)
	return meshstat.EdgeStats{}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestCompute(t *testing.T) {
	shop := statstest.Shop()
	r := meshstat.Compute(sample(shop, 3), sample(shop, 4))
	if !r.At.Equal(statstest.Epoch.Add(8*time.Second)) || r.WindowS != 2 {
		t.Fatalf("at %v window %v", r.At, r.WindowS)
	}
	names := []string{}
	for _, s := range r.Services {
		names = append(names, s.Name)
	}
	if got := len(names); got != 5 {
		t.Fatalf("services %v, want bridge inventory orders payments web", names)
	}

	inv := service(t, r, "inventory")
	if inv.Kind != "agent" || inv.Instances != 3 || inv.Serving != 2 {
		t.Errorf("inventory: kind %s, %d instances, %d serving", inv.Kind, inv.Instances, inv.Serving)
	}
	// Per step: 30 calls to each v1 instance, 8 to v2 (2 of them failed).
	near(t, "inventory rps", inv.RPS, 68.0/2)
	near(t, "inventory success", *inv.Success, 1-2.0/68)
	if inv.Requests != 68 || inv.Errors != 2 || inv.MeshErrors["overloaded"] != 2 {
		t.Errorf("inventory golden %+v", inv.Golden)
	}
	if len(inv.Subsets) != 2 || inv.Subsets[0].Subset != "v1" || inv.Subsets[0].Instances != 2 || inv.Subsets[1].Serving != 0 {
		t.Fatalf("subsets %+v", inv.Subsets)
	}
	near(t, "v1 rps", inv.Subsets[0].RPS, 30)
	near(t, "v1 success", *inv.Subsets[0].Success, 1)
	if len(inv.Callers) != 3 || inv.Callers[0].Caller != "bridge" || inv.Callers[1].Caller != "orders" {
		t.Fatalf("callers %+v", inv.Callers)
	}
	near(t, "orders -> inventory rps (server side)", inv.Callers[1].RPS, 20)
	// v1's calls sit mostly in (0.5, 1]ms, v2's in (25, 50]: the median is
	// inside v1's bucket, the p99 in v2's range.
	if p := *inv.P50MS; p <= 0.5 || p > 1 {
		t.Errorf("inventory p50 %v ms, want in (0.5, 1]", p)
	}
	if p := *inv.P99MS; p <= 25 || p > 100 || inv.P99Over {
		t.Errorf("inventory p99 %v ms (over %v), want in (25, 100]", p, inv.P99Over)
	}

	// The gateway's outside clients.
	gw := service(t, r, "bridge")
	if gw.Kind != "bridge" || len(gw.Callers) != 1 || gw.Callers[0].Caller != "" {
		t.Errorf("bridge %+v", gw)
	}
	near(t, "bridge rps", gw.RPS, 30)

	// Edges come from the caller's side when it reports them.
	e := edge(t, r, "orders", "inventory")
	if e.Source != "client" || e.Requests != 40 {
		t.Errorf("orders -> inventory %+v", e)
	}
	// payments has no instance: only the caller saw its calls fail.
	pay := service(t, r, "payments")
	if pay.Kind != "external" || pay.Instances != 0 || pay.Requests != 2 || *pay.Success != 0 || pay.MeshErrors["no-responders"] != 2 {
		t.Errorf("payments %+v", pay)
	}
	near(t, "payments rps", pay.RPS, 1)
	if e := edge(t, r, "web", "payments"); e.Source != "client" || *e.Success != 0 {
		t.Errorf("web -> payments %+v", e)
	}

	// The same answers in another order give the same report.
	cur := sample(shop, 4)
	for i, j := 0, len(cur.Snapshots)-1; i < j; i, j = i+1, j-1 {
		cur.Snapshots[i], cur.Snapshots[j] = cur.Snapshots[j], cur.Snapshots[i]
	}
	if r2 := meshstat.Compute(sample(shop, 3), cur); r2.Services[1].RPS != inv.RPS {
		t.Errorf("order changed the rps: %v", r2.Services[1].RPS)
	}
}

func TestComputeFirstSample(t *testing.T) {
	r := meshstat.Compute(meshstat.Sample{}, sample(statstest.Shop(), 5))
	if len(r.Services) != 5 || len(r.Edges) != 5 || r.WindowS != 0 {
		t.Fatalf("%d services, %d edges, window %v", len(r.Services), len(r.Edges), r.WindowS)
	}
	for _, s := range r.Services {
		if s.Requests != 0 || s.RPS != 0 || s.Success != nil || s.P99MS != nil {
			t.Errorf("%s has traffic without a previous sample: %+v", s.Name, s.Golden)
		}
	}
}

func TestComputeRestartAndNewInstance(t *testing.T) {
	shop := statstest.Shop()
	prev, cur := sample(shop, 10), sample(shop, 11)
	// orders restarted under the same id (it cannot, but a reader must
	// not underflow): its counters are back at one step's worth.
	for i, s := range cur.Snapshots {
		if s.ID == "ord1" {
			fresh := shop[1].Snapshot(1)
			fresh.Now = s.Now
			cur.Snapshots[i] = fresh
		}
	}
	// A new web instance that the previous sample did not see.
	cur.Snapshots = append(cur.Snapshots, statstest.Instance{Service: "web", ID: "web2", Kind: "agent", Serving: true, Flows: shop[5].Flows}.Snapshot(11))
	r := meshstat.Compute(prev, cur)
	if o := service(t, r, "orders"); o.Requests != 40 {
		t.Errorf("orders after a restart: %d requests, want one step's 40", o.Requests)
	}
	if w := service(t, r, "web"); w.Instances != 2 {
		t.Errorf("web has %d instances, want 2", w.Instances)
	}
	if e := edge(t, r, "web", "payments"); e.Requests != 2 {
		t.Errorf("the new instance added traffic before it was seen twice: %d", e.Requests)
	}
}

func TestDecode(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := meshstat.Decode([]byte(`{"type":"io.nats.micro.v1.stats_response","name":"clock","id":"c1","started":"2025-01-01T00:00:00Z",
		"endpoints":[{"name":"a","subject":"demo.clock","num_requests":7,"num_errors":1},{"name":"b","subject":"demo.tz","num_requests":3}]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != meshstat.KindMicro || s.Service != "clock" || s.Inbound[0].Requests != 10 || s.Inbound[0].Errors != 1 || !s.Now.Equal(now) || len(s.Endpoints) != 2 {
		t.Fatalf("micro snapshot %+v", s)
	}
	in := statstest.Shop()[0]
	s, err = meshstat.Decode(in.Answer(2), now)
	if err != nil || s.Kind != meshstat.KindBridge || s.Inbound[0].Requests != 120 || !s.Now.Equal(statstest.Epoch.Add(4*time.Second)) {
		t.Fatalf("natsmesh snapshot %+v, %v", s, err)
	}
	for _, bad := range []string{
		`not json`,
		`{"natsmesh":{"service":"a","id":"x"}}`,
		`{"natsmesh":{"service":"a","id":"x","now":"2025-01-01T00:00:00Z","inbound":[{"requests":1,"errors":2}]}}`,
		`{"natsmesh":{"service":"a","id":"x","now":"2025-01-01T00:00:00Z","inbound":[{"requests":1,"latency":{"bounds_ms":[1],"counts":[1]}}]}}`,
	} {
		if _, err := meshstat.Decode([]byte(bad), now); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}

// A gateway's route to a NATS-native endpoint names the micro service
// behind the subject.
func TestComputeNamesNATSCallees(t *testing.T) {
	gw := statstest.Instance{Service: "bridge", ID: "gw", Kind: meshstat.KindBridge, Serving: true,
		Flows: []statstest.Flow{{Peer: "nats:demo.clock", Proto: "http", Requests: 4}}}
	clock := meshstat.Snapshot{Service: "clock", ID: "c1", Kind: meshstat.KindMicro, Serving: true, Now: statstest.Epoch, Endpoints: []string{"demo.clock"}}
	prev, cur := sample([]statstest.Instance{gw}, 1), sample([]statstest.Instance{gw}, 2)
	prev.Snapshots = append(prev.Snapshots, clock)
	cur.Snapshots = append(cur.Snapshots, clock)
	r := meshstat.Compute(prev, cur)
	if e := edge(t, r, "bridge", "clock"); e.Requests != 4 || e.RPS != 2 {
		t.Fatalf("bridge -> clock %+v", e)
	}
	if len(r.Services) != 2 {
		t.Fatalf("services %+v", r.Services)
	}
}

// TestComputeEgress: calls out of the mesh (callees egress:HOST and
// egress:_other) are destinations of kind egress with their callers'
// view, not services of kind external.
func TestComputeEgress(t *testing.T) {
	web := statstest.Instance{Service: "web", ID: "w1", Kind: meshstat.KindAgent, Serving: true,
		Flows: []statstest.Flow{{Peer: "egress:api.example.com", Proto: "http", Requests: 4}, {Peer: meshstat.EgressOther, Proto: "http", Requests: 2}}}
	r := meshstat.Compute(sample([]statstest.Instance{web}, 1), sample([]statstest.Instance{web}, 2))
	for _, name := range []string{"egress:api.example.com", meshstat.EgressOther} {
		if s := service(t, r, name); s.Kind != meshstat.KindEgress || s.Requests == 0 {
			t.Errorf("%s: kind %q, %d requests; want kind %q with its callers' calls", name, s.Kind, s.Requests, meshstat.KindEgress)
		}
	}
	if e := edge(t, r, "web", "egress:api.example.com"); e.Requests != 4 {
		t.Errorf("web -> egress:api.example.com %+v", e)
	}
}

// A NATS-native micro service measures no latency ($SRV.STATS has no
// histogram); its row shows its mesh callers' latency to it, as the edge
// does (issue 19: the edge had a p99 and the service none).
func TestComputeMicroLatency(t *testing.T) {
	lat := make([]uint64, len(statstest.Bounds)+1)
	lat[4] = 4 // 5-10 ms
	gw := statstest.Instance{Service: "bridge", ID: "gw", Kind: meshstat.KindBridge, Serving: true,
		Flows: []statstest.Flow{{Peer: "nats:demo.clock", Proto: "http", Requests: 4, Latency: lat}}}
	clock := func(k uint64) meshstat.Snapshot {
		return meshstat.Snapshot{Service: "clock", ID: "c1", Kind: meshstat.KindMicro, Serving: true, Now: statstest.Epoch.Add(time.Duration(k) * 2 * time.Second),
			Endpoints: []string{"demo.clock"}, Inbound: []meshstat.Edge{{Proto: "nats", Requests: 4 * k, Latency: meshstat.Histogram{Counts: []uint64{4 * k}}}}} // as Decode has it
	}
	prev, cur := sample([]statstest.Instance{gw}, 1), sample([]statstest.Instance{gw}, 2)
	prev.Snapshots = append(prev.Snapshots, clock(1))
	cur.Snapshots = append(cur.Snapshots, clock(2))
	r := meshstat.Compute(prev, cur)
	e, c := edge(t, r, "bridge", "clock"), service(t, r, "clock")
	if e.P99MS == nil {
		t.Fatalf("the edge has no latency: %+v", e)
	}
	if c.Requests != 4 || c.P99MS == nil || *c.P99MS != *e.P99MS || c.P50MS == nil {
		t.Fatalf("clock %+v (p99 %v), want its 4 requests and the edge's p99 %v", c, c.P99MS, *e.P99MS)
	}
}

// TestComputeForgetsUncalledNames (issue 19, found by a new user): a
// name called that has no instance of its own (a typo, a service gone)
// is shown while it is called, and gone from the report after a window
// without a call to it; a service with instances stays, called or not,
// and so does an egress destination (bounded by the mesh file).
func TestComputeForgetsUncalledNames(t *testing.T) {
	web := statstest.Instance{Service: "web", ID: "w1", Kind: meshstat.KindAgent, Serving: true,
		Flows: []statstest.Flow{{Peer: "ordrs", Proto: "http", Requests: 1}, {Peer: "orders", Proto: "http", Requests: 1},
			{Peer: meshstat.EgressOther, Proto: "http", Requests: 1}}}
	orders := statstest.Instance{Service: "orders", ID: "o1", Kind: meshstat.KindAgent, Serving: true}
	called := meshstat.Compute(sample([]statstest.Instance{web, orders}, 1), sample([]statstest.Instance{web, orders}, 2))
	if s := service(t, called, "ordrs"); s.Requests == 0 {
		t.Fatalf("ordrs while called: %+v", s)
	}
	// A window later, nothing called: the same counters, 2 s on.
	later := sample([]statstest.Instance{web, orders}, 2)
	for i := range later.Snapshots {
		later.Snapshots[i].Now = later.Snapshots[i].Now.Add(2 * time.Second)
	}
	later.At = later.At.Add(2 * time.Second)
	quiet := meshstat.Compute(sample([]statstest.Instance{web, orders}, 2), later)
	for _, s := range quiet.Services {
		if s.Name == "ordrs" {
			t.Errorf("ordrs, not called in the window and with no instance, is still a service: %+v", s)
		}
	}
	for _, e := range quiet.Edges {
		if e.Callee == "ordrs" {
			t.Errorf("the edge to ordrs stays: %+v", e)
		}
	}
	service(t, quiet, "orders")
	service(t, quiet, meshstat.EgressOther)
}
