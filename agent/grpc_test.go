package agent

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// testService is a generated gRPC service (grpc-go's interop TestService)
// that echoes what it saw: the payload, the caller, metadata and deadline.
type testService struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if code := req.GetResponseStatus().GetCode(); code != 0 {
		grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", s.name))
		return nil, status.Error(codes.Code(code), req.GetResponseStatus().GetMessage())
	}
	grpc.SetHeader(ctx, metadata.Pairs("x-instance", s.name))
	caller, _ := CallerFrom(ctx)
	if caller == "" && len(md.Get("mesh-caller")) > 0 {
		caller = md.Get("mesh-caller")[0]
	}
	user := caller + "|" + first(md.Get("x-user"))
	if d, ok := ctx.Deadline(); ok {
		// Whole seconds left, rounded up: a 5s deadline reads 5s however
		// long (under a second) the call took to arrive.
		user += "|deadline:" + (time.Duration(math.Ceil(time.Until(d).Seconds())) * time.Second).String()
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: user}, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// grpcUpstream runs a real gRPC server on loopback with the test and health
// services and returns its h2c URL.
func grpcUpstream(t *testing.T, name string) (string, *health.Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &testService{name: name})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return "h2c://" + l.Addr().String(), hs
}

func TestGRPCSidecarToSidecar(t *testing.T) {
	b := meshtest.Broker(t)
	up, _ := grpcUpstream(t, "orders-1")
	startAgent(t, b, Config{Service: "orders", Upstream: up})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeGRPCProxy)

	// A plain gRPC client: only its authority says where the call goes.
	cc, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)

	t.Run("metadata, deadline, header", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-user", "ada")
		var header metadata.MD
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}, grpc.Header(&header))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.GetPayload().GetBody()) != "ping" {
			t.Errorf("payload %q", resp.GetPayload().GetBody())
		}
		if want := "web|ada|deadline:5s"; resp.GetUsername() != want {
			t.Errorf("service saw %q, want %q", resp.GetUsername(), want)
		}
		if got := header.Get("x-instance"); len(got) != 1 || got[0] != "orders-1" {
			t.Errorf("header metadata %v", header)
		}
	})
	t.Run("error status and trailer", func(t *testing.T) {
		var trailer metadata.MD
		_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{
			ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "out of stock"},
		}, grpc.Trailer(&trailer))
		if s := status.Convert(err); s.Code() != codes.FailedPrecondition || s.Message() != "out of stock" {
			t.Errorf("got %v, want FailedPrecondition out of stock", err)
		}
		if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "orders-1" {
			t.Errorf("trailer metadata %v", trailer)
		}
	})
	t.Run("no instance", func(t *testing.T) {
		cc, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("nobody"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = testpb.NewTestServiceClient(cc).EmptyCall(context.Background(), &testpb.Empty{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("got %v, want Unavailable", err)
		}
	})
}

func TestGRPCInProcess(t *testing.T) {
	b := meshtest.Broker(t)
	// In-process server: a generated server registered on the agent.
	startAgent(t, b, Config{Service: "orders"}, func(a *Agent) {
		testpb.RegisterTestServiceServer(a.GRPCServer(), &testService{name: "inproc"})
	})
	up, _ := grpcUpstream(t, "sidecar")
	startAgent(t, b, Config{Service: "users", Upstream: up})
	web := startAgent(t, b, Config{Service: "web"})

	for _, tc := range []struct{ service, instance string }{
		{"orders", "inproc"}, // in-process client to in-process server
		{"users", "sidecar"}, // in-process client to sidecar server
	} {
		t.Run(tc.service, func(t *testing.T) {
			conn, err := web.ClientConn(tc.service)
			if err != nil {
				t.Fatal(err)
			}
			var header metadata.MD
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", "bob")
			resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			if got := header.Get("x-instance"); len(got) != 1 || got[0] != tc.instance {
				t.Errorf("answered by %v, want %s", got, tc.instance)
			}
			// The agent applies its default timeout as the deadline.
			if want := "web|bob|deadline:30s"; resp.GetUsername() != want {
				t.Errorf("service saw %q, want %q", resp.GetUsername(), want)
			}
		})
	}
	t.Run("sidecar client to in-process server", func(t *testing.T) {
		proxy := listen(t, web.ServeGRPCProxy)
		cc, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders:443"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		var header metadata.MD
		if _, err := testpb.NewTestServiceClient(cc).UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-instance"); len(got) != 1 || got[0] != "inproc" {
			t.Errorf("answered by %v", got)
		}
	})
}

func TestGRPCHealthWithdraws(t *testing.T) {
	b := meshtest.Broker(t)
	up, hs := grpcUpstream(t, "orders-1")
	a := startAgent(t, b, Config{Service: "orders", Upstream: up,
		Health: HealthConfig{Interval: 50 * time.Millisecond, FailThreshold: 1, PassThreshold: 1}})
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if a.Serving() {
			return status.Error(codes.Internal, "still serving")
		}
		return nil
	})
	web := startAgent(t, b, Config{Service: "web"})
	conn, _ := web.ClientConn("orders")
	_, err := testpb.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("withdrawn service: got %v, want Unavailable", err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
		return err
	})
}
