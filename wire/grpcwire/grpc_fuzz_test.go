package grpcwire

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/natsmesh/natsmesh/wire"
)

// noLimits lets a fuzzed message be re-encoded whatever its size.
var noLimits = wire.Limits{MaxPayload: 1 << 40, MaxHeaderBytes: 1 << 30, MaxHeaders: 1 << 30}

// fuzzMsg builds a message from a raw NATS header block, as the client
// library would parse it off the wire.
func fuzzMsg(subject string, hdr, data []byte) (*nats.Msg, bool) {
	h, err := nats.DecodeHeadersMsg(hdr)
	if err != nil {
		return nil, false
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}, true
}

func wireHeader(h nats.Header) []byte {
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// FuzzDecodeGRPCRequest checks that DecodeRequest never panics and that
// what it accepts re-encodes to a message that decodes to the same call.
func FuzzDecodeGRPCRequest(f *testing.F) {
	subject := wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	seed, err := encodeGRPCAt(subject, &Request{
		Method:   "/pkg.Svc/Get",
		Metadata: metadata.Pairs("x-a", "1", "b-bin", "\x00\xff", "status", "s", "mesh-caller", "forged"),
		Payload:  []byte("payload"),
		Timeout:  1e9,
	}, wire.Limits{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(subject, wireHeader(seed.Header), seed.Data)
	f.Add("other", []byte("NATS/1.0\r\nMesh-Grpc-Method: /a/b\r\nMesh-Timeout: -1s\r\n\r\n"), []byte{})
	f.Add(subject, []byte("NATS/1.0\r\nMesh-Grpc-Method: /pkg.Svc/Put\r\n\r\n"), []byte{})
	f.Add(subject, []byte("NATS/1.0\r\nX-Bin: ====\r\nMesh-Hdr-Mesh-Trailer-x: 1\r\n\r\n"), []byte{})
	f.Add("mesh.a._.b.grpc.%2Fa%2Fb", []byte("NATS/1.0 503\r\n\r\n"), []byte{})
	f.Fuzz(func(t *testing.T, subject string, hdr, data []byte) {
		m, ok := fuzzMsg(subject, hdr, data)
		if !ok {
			return
		}
		req, err := DecodeRequest(m)
		if err != nil {
			if wire.FromError(err).Kind != wire.KindBadRequest {
				t.Fatalf("error of kind %s: %v", wire.FromError(err).Kind, err)
			}
			return
		}
		if !validGRPCMethod(req.Method) {
			t.Fatalf("accepted method %q", req.Method)
		}
		if _, ok := req.Metadata[MetadataCaller]; ok {
			t.Fatalf("caller metadata not dropped: %v", req.Metadata)
		}
		m2, err := encodeGRPCAt(subject, &Request{Method: req.Method, Metadata: req.Metadata, Payload: req.Payload}, noLimits)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", req, err)
		}
		// Through the wire form again, as a receiver would see it.
		m3, ok := fuzzMsg(subject, wireHeader(m2.Header), m2.Data)
		if !ok {
			t.Fatalf("re-encoded header does not parse: %q", wireHeader(m2.Header))
		}
		req2, err := DecodeRequest(m3)
		if err != nil {
			t.Fatalf("decoding the re-encoded %+v: %v", req, err)
		}
		if req2.Method != req.Method || !bytes.Equal(req2.Payload, req.Payload) || !mdEqual(req2.Metadata, req.Metadata) {
			t.Fatalf("round trip: %+v != %+v", req2, req)
		}
	})
}

// FuzzDecodeGRPCResponse checks that DecodeResponse never panics and that
// the answers it reads re-encode to the same answer.
func FuzzDecodeGRPCResponse(f *testing.F) {
	st, _ := status.New(codes.InvalidArgument, " 100%\n").WithDetails(&grpcTestDetail)
	seed, err := ResponseMsg(&Response{Payload: []byte("p"), Header: metadata.Pairs("a", "1"),
		Trailer: metadata.Pairs("t-bin", "\x01"), Status: st}, wire.Limits{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wireHeader(seed.Header), seed.Data)
	f.Add(wireHeader(wire.ErrorMsg(wire.ErrOverloaded).Header), []byte{})
	f.Add([]byte("NATS/1.0 503\r\n\r\n"), []byte{})
	f.Add([]byte("NATS/1.0\r\nNats-Service-Error: x\r\nNats-Service-Error-Code: 503\r\n\r\n"), []byte{})
	f.Add([]byte("NATS/1.0\r\nMesh-Grpc-Status: 4294967295\r\nMesh-Grpc-Message: %zz%4\r\n\r\n"), []byte("x"))
	f.Fuzz(func(t *testing.T, hdr, data []byte) {
		m, ok := fuzzMsg("", hdr, data)
		if !ok {
			return
		}
		resp, err := DecodeResponse(m)
		if err != nil {
			if _, ok := err.(*wire.Error); !ok {
				t.Fatalf("error %T %v is no *wire.Error", err, err)
			}
			return
		}
		if resp.Status == nil {
			t.Fatal("nil status")
		}
		m2, err := ResponseMsg(resp, noLimits)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", resp, err)
		}
		m3, ok := fuzzMsg("", wireHeader(m2.Header), m2.Data)
		if !ok {
			t.Fatalf("re-encoded header does not parse: %q", wireHeader(m2.Header))
		}
		resp2, err := DecodeResponse(m3)
		if err != nil {
			t.Fatalf("decoding the re-encoded %+v: %v", resp, err)
		}
		if !proto.Equal(resp2.Status.Proto(), resp.Status.Proto()) || !bytes.Equal(resp2.Payload, resp.Payload) ||
			!mdEqual(resp2.Header, resp.Header) || !mdEqual(resp2.Trailer, resp.Trailer) {
			t.Fatalf("round trip: %+v != %+v", resp2, resp)
		}
	})
}
