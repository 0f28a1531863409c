package bridge

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// grpcTestDetail is a status detail for fuzz seeds.
var grpcTestDetail = errdetails.ErrorInfo{Reason: "r", Domain: "d"}

func benchGRPCRequest() (string, *GRPCRequest) {
	subject := Subject{Service: "orders", Caller: "web", Proto: ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	return subject, &GRPCRequest{
		Method:   "/pkg.Svc/Get",
		Metadata: metadata.Pairs("x-request-id", "0123456789abcdef", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "auth-bin", "\x01\x02\x03\x04"),
		Payload:  bytes.Repeat([]byte{0xab}, 1024),
		Timeout:  2 * time.Second,
	}
}

func BenchmarkEncodeGRPCRequest(b *testing.B) {
	subject, req := benchGRPCRequest()
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Payload)))
	for b.Loop() {
		if _, err := EncodeGRPCRequest(subject, req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGRPCRequest(b *testing.B) {
	subject, req := benchGRPCRequest()
	m, err := EncodeGRPCRequest(subject, req, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Payload)))
	for b.Loop() {
		if _, err := DecodeGRPCRequest(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGRPCServerServeMsg is the receiving side's whole per-call path:
// decode, dispatch to a registered service, encode the reply.
func BenchmarkGRPCServerServeMsg(b *testing.B) {
	s := NewGRPCServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	payload, err := proto.Marshal(&healthpb.HealthCheckRequest{})
	if err != nil {
		b.Fatal(err)
	}
	const method = "/grpc.health.v1.Health/Check"
	subject := Subject{Service: "orders", Caller: "web", Proto: ProtoGRPC, Op: method}.String()
	m, err := EncodeGRPCRequest(subject, &GRPCRequest{
		Method:   method,
		Metadata: metadata.Pairs("x-request-id", "0123456789abcdef"),
		Payload:  payload,
		Timeout:  2 * time.Second,
	}, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if reply := s.ServeMsg(ctx, m); reply.Header.Get(HeaderGRPCStatus) != "0" {
			b.Fatalf("reply %v", reply.Header)
		}
	}
}
