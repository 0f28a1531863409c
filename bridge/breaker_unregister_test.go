package bridge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// A gateway that was shut down no longer reports its breakers: ObserveBreakers
// used to keep every pipeline's breaker list for the Telemetry's lifetime, so a
// Telemetry that outlives its gateway (a program that rebuilds its Edge)
// counts one breaker per gateway ever built.
func TestGatewayShutdownUnregistersBreakers(t *testing.T) {
	b := meshtest.Broker(t)
	tel, err := telemetry.New(telemetry.Config{Service: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	for i := range 3 {
		nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("edge")))
		g, err := NewGateway(GatewayConfig{Conn: nc, Name: "edge", Routes: []Route{{PathPrefix: "/", Service: "orders"}},
			Telemetry: tel, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g)
		resp, err := http.Get(srv.URL + "/x") // no responders: the breaker for orders is made
		if err == nil {
			resp.Body.Close()
		}
		srv.Close()
		if n := closedBreakers(t, tel); n != "1" {
			t.Errorf("gateway %d of 3, running: %s closed breakers to orders reported (want 1)", i+1, n)
		}
		g.Shutdown(context.Background())
		nc.Close()
	}
	if n := closedBreakers(t, tel); n != "" && n != "0" {
		t.Errorf("after every gateway shut down: %s closed breakers to orders reported (want none)", n)
	}
}

// closedBreakers is the value of the closed breakers to orders on tel's
// metrics page, "" without that series.
func closedBreakers(t *testing.T, tel *telemetry.Telemetry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	m := regexp.MustCompile(`natsmesh_outbound_breaker_state\{[^}]*callee="orders"[^}]*state="closed"[^}]*\} (\d+)`).FindSubmatch(body)
	if m == nil {
		return ""
	}
	return string(m[1])
}
