package meshgrpc_test

import (
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshgrpc"
	"github.com/natsmesh/natsmesh/policies/live"
)

// interopService runs grpc-go's interop test server, with reflection, on
// loopback, and returns its h2c upstream URL.
func interopService(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, interop.NewTestServer())
	reflection.RegisterV1(s)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return "h2c://" + l.Addr().String()
}

// TestInteropThroughSidecars: issue 18. grpc-go's interop client, through
// the caller's sidecar (its gRPC proxy) and the service's (its h2c
// upstream), to grpc-go's interop server; and the generated stubs from
// one agent's ClientConn to the interop server registered in another
// agent, in process. Reflection lists the services through the sidecars.
func TestInteropThroughSidecars(t *testing.T) {
	b := meshtest.Broker(t)
	sidecar := func(cfg agent.SidecarConfig) *agent.Sidecar {
		cfg.Connect = agent.ConnectConfig{URL: b.ClientURL()}
		cfg.Policy = live.Off
		s := agenttest.StartSidecar(t, cfg)
		if err := s.Ready(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		return s
	}
	sidecar(agent.SidecarConfig{Agent: agent.Config{Service: "orders", Upstream: interopService(t)}})
	web := sidecar(agent.SidecarConfig{Agent: agent.Config{Service: "web"}, GRPC: "127.0.0.1:0"})
	cc, err := grpc.NewClient(web.Addr("gRPC proxy").String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })

	t.Run("sidecars", func(t *testing.T) {
		meshgrpc.RunInterop(t, testpb.NewTestServiceClient(cc), meshgrpc.FullDuplexOverNATS)
	})
	t.Run("in process", func(t *testing.T) {
		agenttest.Start(t, b, agent.Config{Service: "users"}, func(a *agent.Agent) error {
			testpb.RegisterTestServiceServer(a.GRPCServer(), interop.NewTestServer())
			return nil
		})
		caller := agenttest.Start(t, b, agent.Config{Service: "web"})
		conn, err := caller.ClientConn("users")
		if err != nil {
			t.Fatal(err)
		}
		meshgrpc.RunInterop(t, testpb.NewTestServiceClient(conn), meshgrpc.FullDuplexOverNATS)
	})
	t.Run("reflection", func(t *testing.T) {
		if !meshgrpc.FullDuplexOverNATS {
			t.Skip("needs full duplex: streams cross NATS whole until the stream protocol")
		}
		want := []string{"grpc.reflection.v1.ServerReflection", "grpc.testing.TestService"}
		if got := meshgrpc.ListServices(t, reflectionpb.NewServerReflectionClient(cc)); !slices.Equal(got, want) {
			t.Errorf("services %q, want %q", got, want)
		}
	})
}
