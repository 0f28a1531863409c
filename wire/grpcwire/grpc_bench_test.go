package grpcwire

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/metadata"

	"github.com/natsmesh/natsmesh/wire"
)

func benchGRPCRequest() (string, *Request) {
	subject := wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	return subject, &Request{
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
		if _, err := encodeGRPCAt(subject, req, wire.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGRPCRequest(b *testing.B) {
	subject, req := benchGRPCRequest()
	m, err := encodeGRPCAt(subject, req, wire.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Payload)))
	for b.Loop() {
		if _, err := DecodeRequest(m); err != nil {
			b.Fatal(err)
		}
	}
}

// grpcTestDetail is a status detail for fuzz seeds.
var grpcTestDetail = errdetails.ErrorInfo{Reason: "r", Domain: "d"}
