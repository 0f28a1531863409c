package meshgrpc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// BenchmarkServerServeCall is the receiving side's whole per-call path in
// the in-process gRPC server: decode, dispatch to a registered service,
// encode the reply.
func BenchmarkServerServeCall(b *testing.B) {
	s := NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	payload, err := proto.Marshal(&healthpb.HealthCheckRequest{})
	if err != nil {
		b.Fatal(err)
	}
	const method = "/grpc.health.v1.Health/Check"
	m, err := grpcwire.EncodeRequest(&grpcwire.Request{
		Method:   method,
		Metadata: metadata.Pairs("x-request-id", "0123456789abcdef"),
		Payload:  payload,
		Timeout:  2 * time.Second,
	}, wire.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: method, Header: m.Header, Body: pipeline.Body{Bytes: m.Data}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		reply, err := s.ServeCall(ctx, c)
		if err != nil || reply.Header.Get(grpcwire.HeaderGRPCStatus) != "0" {
			b.Fatalf("reply %v, %v", reply, err)
		}
	}
}

// BenchmarkProxyUnary is a unary call from a real gRPC client through the
// Proxy, over NATS, to an Upstream's real gRPC server: the sidecar path,
// where the proxy sends every call as a stream and the upstream answers a
// unary method whole (settle).
func BenchmarkProxyUnary(b *testing.B) {
	nc := runGRPCTestNATS(b)
	addr := startServer(b, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, interop.NewTestServer()) })
	serveGRPCOverNATS(b, nc, "orders", &Upstream{Conn: dialGRPC(b, addr)})
	client := testpb.NewTestServiceClient(viaProxy(b, sender(b, nc)))
	ctx := context.Background()
	req := &testpb.SimpleRequest{ResponseSize: 100}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.UnaryCall(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
