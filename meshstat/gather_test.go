package meshstat_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/statstest"
	"github.com/natsmesh/natsmesh/meshstat"
)

var quick = meshstat.GatherOptions{Quiet: 100 * time.Millisecond, Timeout: 2 * time.Second}

func TestGather(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	statstest.Serve(t, meshtest.Conn(t, b), statstest.Shop()...)
	// A plain micro service, and an answer that is not stats at all.
	clockConn := meshtest.Conn(t, b)
	svc, err := micro.AddService(clockConn, micro.Config{Name: "clock", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "demo.clock", Handler: micro.HandlerFunc(func(r micro.Request) { r.Respond([]byte("now")) })}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	// The service's subscriptions reach the broker before the first call.
	if err := clockConn.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := nc.Request("demo.clock", nil, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	junk := meshtest.Conn(t, b)
	junk.Subscribe("$SRV.STATS", func(m *nats.Msg) { m.Respond([]byte("{]")) })
	junk.Flush()

	s, err := meshstat.Gather(context.Background(), nc, quick)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Snapshots) != len(statstest.Shop())+1 || len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "meshstat: invalid stats") {
		t.Fatalf("%d snapshots, problems %q", len(s.Snapshots), s.Problems)
	}
	var clock *meshstat.Snapshot
	for i := range s.Snapshots {
		if s.Snapshots[i].Service == "clock" {
			clock = &s.Snapshots[i]
		}
	}
	if clock == nil || clock.Kind != meshstat.KindMicro || clock.Inbound[0].Requests != 3 {
		t.Fatalf("clock %+v", clock)
	}

	// A sampler's second report has the traffic of one step.
	sm := meshstat.NewSampler(nc, quick)
	if _, err := sm.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := sm.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.WindowS != 2 || len(r.Problems) != 1 {
		t.Fatalf("window %v, problems %q", r.WindowS, r.Problems)
	}
	for _, sv := range r.Services {
		if sv.Name == "inventory" && sv.RPS != 34 {
			t.Errorf("inventory rps %v, want 34", sv.RPS)
		}
	}
}

func TestGatherNoOne(t *testing.T) {
	nc := meshtest.Conn(t, meshtest.Broker(t))
	start := time.Now()
	s, err := meshstat.Gather(context.Background(), nc, meshstat.GatherOptions{Quiet: 5 * time.Second, Timeout: 10 * time.Second})
	if err != nil || len(s.Snapshots) != 0 {
		t.Fatalf("%+v, %v", s, err)
	}
	// No responders ends it at once instead of after the quiet period.
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("an empty mesh took %v", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := meshstat.Gather(ctx, nc, quick); err == nil {
		t.Error("a cancelled context is no error")
	}
}
