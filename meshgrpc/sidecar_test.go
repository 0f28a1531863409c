package meshgrpc_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshgrpc"
	"github.com/natsmesh/natsmesh/policies/live"
)

// shortTimeout is the agents' default deadline in these tests, which a
// stream outlives: it bounds only the wait for a stream's head.
const shortTimeout = 300 * time.Millisecond

// services registers the test services on r: grpc-go's interop server,
// health (whose server is returned), reflection, and held.
func services(r interface {
	grpc.ServiceRegistrar
	reflection.GRPCServer
}, held *heldService) *health.Server {
	testpb.RegisterTestServiceServer(r, interop.NewTestServer())
	hs := health.NewServer()
	healthpb.RegisterHealthServer(r, hs)
	reflection.RegisterV1(r)
	r.RegisterService(&heldDesc, held)
	return hs
}

// heldDesc is natsmesh.test.Held, a service with one bidirectional
// stream, Hold, written without generated code: it sends one message,
// then holds the stream until its call ends, and tells how it ended.
var heldDesc = grpc.ServiceDesc{
	ServiceName: "natsmesh.test.Held",
	HandlerType: (*holder)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName: "Hold", ServerStreams: true, ClientStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error { return srv.(holder).hold(ss) },
	}},
}

type holder interface{ hold(grpc.ServerStream) error }

type heldService struct {
	ended    chan error
	deadline chan time.Time // the call's deadline, as the service sees it
}

func newHeld() *heldService {
	return &heldService{ended: make(chan error, 1), deadline: make(chan time.Time, 1)}
}

func (h *heldService) hold(ss grpc.ServerStream) error {
	d, _ := ss.Context().Deadline()
	h.deadline <- d
	if err := ss.SendMsg(&testpb.Empty{}); err != nil {
		return err
	}
	<-ss.Context().Done()
	h.ended <- ss.Context().Err()
	return ss.Context().Err()
}

// hold opens Hold through conn, with a deadline, reads its first message,
// then cancels: the service sees the client's deadline, and its side of
// the call ends, promptly.
func hold(t *testing.T, conn grpc.ClientConnInterface, held *heldService) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	stream, err := conn.NewStream(ctx, &heldDesc.Streams[0], "/natsmesh.test.Held/Hold")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.RecvMsg(&testpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if d := want.Sub(<-held.deadline); d < -time.Second || d > 500*time.Millisecond {
		t.Errorf("the service's deadline differs from the client's by %v", d)
	}
	start := time.Now()
	cancel()
	if err := stream.RecvMsg(&testpb.Empty{}); status.Code(err) != codes.Canceled {
		t.Errorf("got %v, want Canceled", err)
	}
	select {
	case err := <-held.ended:
		if err != context.Canceled {
			t.Errorf("the service's call ended with %v, want canceled", err)
		}
		t.Logf("the service's call ended %v after the client cancelled", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Error("the service's call did not end")
	}
}

// upstreamService runs the test services on a real gRPC server on
// loopback, and returns its h2c upstream URL.
func upstreamService(t *testing.T, held *heldService) (string, *health.Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := services(s, held)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return "h2c://" + l.Addr().String(), hs
}

// TestStreamsThroughAgents: issue 18. grpc-go's interop client, through
// the caller's sidecar (its gRPC proxy) and the service's (its h2c
// upstream), to grpc-go's interop server; and the generated stubs from
// one agent's ClientConn to the interop server registered in another
// agent, in process. Over both: reflection lists the services, a health
// Watch stays open past the agents' default deadline and delivers each
// change as it happens, and a client that cancels ends the service's call.
func TestStreamsThroughAgents(t *testing.T) {
	b := meshtest.Broker(t)
	sideHeld := newHeld()
	up, sideHealth := upstreamService(t, sideHeld)
	sidecar(t, b, agent.SidecarConfig{Agent: agent.Config{Service: "orders", Upstream: up, Timeout: shortTimeout}})
	web := sidecar(t, b, agent.SidecarConfig{Agent: agent.Config{Service: "web", Timeout: shortTimeout}, GRPC: "127.0.0.1:0",
		Binds: []agent.Bind{{Dest: "orders", Addr: "127.0.0.1:0"}}})
	cc, err := grpc.NewClient(web.Addr("gRPC proxy").String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	// The same sidecars through the port bound to orders: HTTP/2 without
	// TLS, gRPC handed to the same proxy, the destination the port's.
	bound, err := grpc.NewClient(web.Addr("bind orders").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bound.Close() })

	procHeld := newHeld()
	var procHealth *health.Server
	agenttest.Start(t, b, agent.Config{Service: "users", Timeout: shortTimeout}, func(a *agent.Agent) error {
		procHealth = services(a.GRPCServer().(*meshgrpc.Server), procHeld)
		return nil
	})
	caller := agenttest.Start(t, b, agent.Config{Service: "web", Timeout: shortTimeout})
	conn, err := caller.ClientConn("users")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		conn grpc.ClientConnInterface
		hs   *health.Server
		held *heldService
	}{
		{"sidecars", cc, sideHealth, sideHeld},
		{"bind port", bound, sideHealth, sideHeld},
		{"in process", conn, procHealth, procHeld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meshgrpc.RunInterop(t, testpb.NewTestServiceClient(tc.conn))
		})
		t.Run(tc.name+": reflection", func(t *testing.T) {
			want := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.testing.TestService", "natsmesh.test.Held"}
			if got := meshgrpc.ListServices(t, reflectionpb.NewServerReflectionClient(tc.conn)); !slices.Equal(got, want) {
				t.Errorf("services %q, want %q", got, want)
			}
		})
		t.Run(tc.name+": health watch", func(t *testing.T) {
			watchPastTheDeadline(t, healthpb.NewHealthClient(tc.conn), tc.hs)
		})
		t.Run(tc.name+": deadline and cancel", func(t *testing.T) {
			hold(t, tc.conn, tc.held)
		})
	}
}

// sidecar starts a sidecar of cfg on b, with the built-in policy, and
// waits until it is ready.
func sidecar(t *testing.T, b *broker.Broker, cfg agent.SidecarConfig) *agent.Sidecar {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	cfg.Agent.Logger = quiet
	cfg.Connect = agent.ConnectConfig{URL: b.ClientURL(), Logger: quiet}
	cfg.Policy = live.Off
	s := agenttest.StartSidecar(t, cfg)
	if err := s.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// watchPastTheDeadline watches the health of service "" through c, with
// no deadline of the client's: the first status at once, then, after the
// agents' default deadline has passed, each change as hs makes it.
func watchPastTheDeadline(t *testing.T, c healthpb.HealthClient, hs *health.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	watch, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		got := make(chan error, 1)
		go func() {
			resp, err := watch.Recv()
			if err == nil && resp.GetStatus() != want {
				err = status.Errorf(codes.Internal, "status %v, want %v", resp.GetStatus(), want)
			}
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			cancel()
			<-got
			t.Fatalf("no %v within 5s", want)
		}
	}
	recv(healthpb.HealthCheckResponse_SERVING)
	time.Sleep(2 * shortTimeout) // past the default deadline: the stream stays open
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	start := time.Now()
	recv(healthpb.HealthCheckResponse_NOT_SERVING)
	t.Logf("a change reached the watcher %v after it was made", time.Since(start))
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	recv(healthpb.HealthCheckResponse_SERVING)
}
