package meshstat_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/meshstat"
)

// TestSnapshotJSON: issue 17 item 5. The schema's one definition writes
// what docs/observability.md shows, as agents and gateways wrote it when
// package telemetry had types of its own: an inbound edge with "caller"
// (even ""), an outbound one with "callee" and "subset" (even ""),
// "mesh_errors" always, a breaker's "subset" always.
func TestSnapshotJSON(t *testing.T) {
	at := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	h := meshstat.Histogram{BoundsMS: []float64{1, 5}, Counts: []uint64{1, 0, 0}}
	s := meshstat.Snapshot{
		Service: "orders", ID: "x", Kind: meshstat.KindAgent, Serving: true, Started: at, Now: at,
		Inbound:  []meshstat.Edge{{Caller: "", Proto: "http", Requests: 1, Latency: h}},
		Outbound: []meshstat.Edge{{Callee: "inventory", Proto: "http", Requests: 1, Errors: 1, MeshErrors: map[string]uint64{"overloaded": 1}, Latency: h}},
		Breakers: []meshstat.Breaker{{Callee: "inventory", State: "open", Count: 1}},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"service":"orders","subset":"","id":"x","kind":"agent","serving":true,` +
		`"started":"2025-01-01T10:00:00Z","now":"2025-01-01T10:00:00Z",` +
		`"inbound":[{"caller":"","proto":"http","requests":1,"errors":0,"mesh_errors":{},"latency":{"bounds_ms":[1,5],"counts":[1,0,0]}}],` +
		`"outbound":[{"callee":"inventory","subset":"","proto":"http","requests":1,"errors":1,"mesh_errors":{"overloaded":1},"latency":{"bounds_ms":[1,5],"counts":[1,0,0]}}],` +
		`"breakers":[{"callee":"inventory","subset":"","state":"open","count":1}]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	// And it reads back as it was (the micro envelope around it).
	got, err := meshstat.Decode([]byte(`{"type":"io.nats.micro.v1.stats_response","natsmesh":`+string(b)+`}`), at)
	if err != nil || len(got.Inbound) != 1 || len(got.Outbound) != 1 || got.Outbound[0].MeshErrors["overloaded"] != 1 || got.Breakers[0].Count != 1 {
		t.Errorf("read back %+v, %v", got, err)
	}
}
