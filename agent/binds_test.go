package agent

import (
	"context"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestTwoBindsToOneDestination: two bind ports to one destination (IPv4
// and IPv6 loopback, or an old port beside a new one) are two listeners,
// "bind orders" and "bind orders #2", as they were before internal/host
// (the review of issue 17 found them refused).
func TestTwoBindsToOneDestination(t *testing.T) {
	b := meshtest.Broker(t)
	s, err := NewSidecar(SidecarConfig{Agent: Config{Service: "web", Logger: quiet},
		Connect: ConnectConfig{URL: b.ClientURL(), Timeout: 5 * time.Second, Logger: quiet}, HTTP: "off", GRPC: "off", Admin: "off", Policy: "off",
		Binds: []Bind{{Dest: "orders", Addr: "127.0.0.1:0"}, {Dest: "orders", Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatalf("two binds to orders: %v", err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, second := s.Addr("bind orders"), s.Addr("bind orders #2")
	if first == nil || second == nil || first.String() == second.String() {
		t.Fatalf("bind ports %v and %v, want two", first, second)
	}
}
