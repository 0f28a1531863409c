package agent

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestGRPCHealthModes: issue 9 item 13. A gRPC upstream without
// grpc.health.v1 (it answers Unimplemented) serves under auto, which logs the
// fallback once, and under connect; under health it never serves.
func TestGRPCHealthModes(t *testing.T) {
	b := meshtest.Broker(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer() // no health service
	testpb.RegisterTestServiceServer(srv, &testService{name: "bare"})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	up := "h2c://" + l.Addr().String()
	hc := HealthConfig{Interval: 20 * time.Millisecond}

	for _, mode := range []GRPCHealthMode{"", GRPCHealthAuto, GRPCHealthConnect} {
		t.Run("mode "+string(mode), func(t *testing.T) {
			logs := &syncBuffer{}
			h := hc
			h.GRPC = mode
			a := startAgent(t, b, Config{Service: "bare", Upstream: up, Health: h, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			time.Sleep(10 * hc.Interval) // several checks
			if !a.Serving() {
				t.Fatal("not serving")
			}
			n := strings.Count(logs.String(), "does not implement grpc.health.v1")
			if want := map[GRPCHealthMode]int{"": 1, GRPCHealthAuto: 1, GRPCHealthConnect: 0}[mode]; n != want {
				t.Errorf("fallback logged %d times, want %d:\n%s", n, want, logs)
			}
		})
	}
	t.Run("mode health", func(t *testing.T) {
		nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("bare")))
		h := hc
		h.GRPC = GRPCHealthProtocol
		a, err := New(nc, Config{Service: "bare", Upstream: up, Health: h, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		defer a.Shutdown(context.Background())
		err = a.Ready(300 * time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "does not implement grpc.health.v1") {
			t.Errorf("Ready = %v, want not serving: no health service", err)
		}
	})
	t.Run("bad mode", func(t *testing.T) {
		if err := (Config{Service: "x", Health: HealthConfig{GRPC: "tcp"}}).Validate(); err == nil {
			t.Error("mode tcp accepted")
		}
	})
}
