package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// TestSnapshotsReadByMeshstat: what real agents and a gateway answer on
// $SRV.STATS is what natsmesh stat reads (package meshstat), with the
// counts of the traffic sent: the contract of docs/observability.md.
func TestSnapshotsReadByMeshstat(t *testing.T) {
	b := meshtest.Broker(t)
	startAgent(t, b, agent.Config{Service: "orders", Subset: "v1", Telemetry: newTelemetry(t, telemetry.Config{})},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: newTelemetry(t, telemetry.Config{})}, nil)
	gw, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:      meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes:    []bridge.Route{{PathPrefix: "/", Service: "orders"}},
		Telemetry: newTelemetry(t, telemetry.Config{}),
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Shutdown(context.Background()) })
	if err := gw.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)

	client := &http.Client{Transport: web.Transport()}
	for range 4 {
		get(t, client, "http://orders/a", nil)
	}
	for range 2 {
		get(t, http.DefaultClient, front.URL+"/b", nil)
	}
	// Refused at the gateway before any call: counted on its inbound side.
	if resp := get(t, http.DefaultClient, front.URL+"/a/../b", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("dot segment: %d", resp.StatusCode)
	}
	s, err := meshstat.Gather(context.Background(), meshtest.Conn(t, b), meshstat.GatherOptions{Quiet: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 0 || len(s.Snapshots) != 3 {
		t.Fatalf("%d snapshots, problems %q", len(s.Snapshots), s.Problems)
	}
	got := map[string]meshstat.Snapshot{}
	for _, sn := range s.Snapshots {
		got[sn.Service] = sn
	}
	o, w, g := got["orders"], got["web"], got["bridge"]
	if o.Kind != "agent" || o.Subset != "v1" || !o.Serving || len(o.Inbound) != 2 {
		t.Fatalf("orders %+v", o)
	}
	in := map[string]uint64{}
	for _, e := range o.Inbound {
		in[e.Caller] = e.Requests
	}
	if in["web"] != 4 || in["bridge"] != 2 {
		t.Errorf("orders inbound %+v", o.Inbound)
	}
	if w.Kind != "agent" || len(w.Outbound) != 1 || w.Outbound[0].Callee != "orders" || w.Outbound[0].Requests != 4 {
		t.Errorf("web %+v", w)
	}
	// The gateway's outside clients are its inbound side, caller "".
	if g.Kind != "bridge" || len(g.Outbound) != 1 || g.Outbound[0].Requests != 2 {
		t.Errorf("bridge %+v", g)
	}
	if len(g.Inbound) != 1 || g.Inbound[0].Caller != "" || g.Inbound[0].Requests != 3 || g.Inbound[0].Errors != 1 ||
		g.Inbound[0].MeshErrors["bad-request"] != 1 {
		t.Errorf("bridge inbound %+v", g.Inbound)
	}
}
