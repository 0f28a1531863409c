package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

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
	// No health service; the interceptor counts the health checks that
	// reach the server (they answer Unimplemented).
	var checks atomic.Int64
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		checks.Add(1)
		return status.Error(codes.Unimplemented, "unknown service")
	}))
	testpb.RegisterTestServiceServer(srv, &testService{name: "bare"})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	up := "h2c://" + l.Addr().String()
	hc := HealthConfig{Interval: 20 * time.Millisecond}

	for _, mode := range []GRPCHealthMode{"", GRPCHealthAuto, GRPCHealthConnect} {
		t.Run("mode "+string(mode), func(t *testing.T) {
			logs := &meshtest.Buffer{}
			h := hc
			h.GRPC = mode
			before := checks.Load()
			a := startAgent(t, b, Config{Service: "bare", Upstream: up, Health: h, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if mode != GRPCHealthConnect {
				// Several checks, so that "logged once" means once.
				meshtest.CheckFor(t, 5*time.Second, hc.Interval, func() error {
					if n := checks.Load() - before; n < 5 {
						return fmt.Errorf("%d health checks so far", n)
					}
					return nil
				})
			}
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
		if err := a.Start(context.Background()); err != nil {
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
