package bridge

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/internal/discovery"
	"github.com/natsmesh/natsmesh/telemetry"
)

// startDiscovery answers $SRV.PING, $SRV.INFO and $SRV.STATS as the
// service named like the gateway, with no endpoints (it serves no
// subject), "natsmesh.kind": "bridge", its serving state, and under
// "natsmesh" in STATS the snapshot of [Gateway.Stats].
func (g *Gateway) startDiscovery(nc *nats.Conn) (*discovery.Responder, error) {
	g.id, g.started = nuid.Next(), time.Now().UTC()
	r, err := discovery.Start(nc, discovery.Config{
		Name:        g.name,
		ID:          g.id,
		Description: "natsmesh edge gateway",
		Metadata: func() map[string]string {
			serving := "true"
			if g.Readiness() != nil {
				serving = "false"
			}
			return map[string]string{"natsmesh.kind": "bridge", "natsmesh.serving": serving}
		},
		Extra:  func() any { return g.Stats() },
		Logger: g.log,
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: answering discovery: %w", err)
	}
	return r, nil
}

// Stats is the gateway's snapshot (see telemetry.Snapshot): kind "bridge",
// serving while ready, and the cumulative counts of the calls it forwarded,
// by edge (outbound only). Without Telemetry the edges are empty.
func (g *Gateway) Stats() telemetry.Snapshot {
	s := g.tel.Snapshot()
	s.Service, s.Kind, s.Serving = g.name, "bridge", g.Readiness() == nil
	s.ID, s.Started = g.id, g.started
	return s
}
