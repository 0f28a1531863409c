package wire_test

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
	"github.com/natsmesh/natsmesh/wire/httpwire"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// dump writes m as it crosses NATS, deterministically: the subject, the
// header block (names sorted, values in order, as nats.go writes them one
// line per value) and the payload.
func dump(b *bytes.Buffer, name string, m *nats.Msg) {
	fmt.Fprintf(b, "=== %s\n", name)
	if m.Subject != "" {
		fmt.Fprintf(b, "subject: %s\n", m.Subject)
	}
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("NATS/1.0\r\n")
	for _, k := range keys {
		for _, v := range m.Header[k] {
			fmt.Fprintf(b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	fmt.Fprintf(b, "payload (%d bytes): %q\n\n", len(m.Data), m.Data)
}

// TestGoldenWire pins the encoded messages of the cases docs/wire.md
// describes, byte for byte, so a change of the wire format is always
// deliberate: run `go test ./wire -run TestGoldenWire -update` and review
// the diff of testdata/wire.golden.
func TestGoldenWire(t *testing.T) {
	var b bytes.Buffer
	must := func(m *nats.Msg, err error) *nats.Msg {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	at := func(m *nats.Msg, s wire.Subject) *nats.Msg {
		m.Subject = s.String()
		wire.SetTimeout(m.Header, 1500*time.Millisecond)
		return m
	}

	// Subjects.
	for _, s := range []wire.Subject{
		{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"},
		{Service: "orders", Subset: "v2", Caller: "web", Proto: wire.ProtoHTTP, Op: "M-SEARCH"},
		{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/shop.Orders/Get"},
		{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: ""},
	} {
		fmt.Fprintf(&b, "subject service=%s subset=%q caller=%s proto=%s op=%q\n  %s\n", s.Service, s.Subset, s.Caller, s.Proto, s.Op, s)
	}
	subjects, queues := wire.ServiceSubjects("orders", "v1")
	fmt.Fprintf(&b, "instance of orders@v1 subscribes %q in queue groups %q; replies to %s\n\n", subjects, queues, wire.PairInbox("web", "orders"))

	// HTTP requests.
	r := httptest.NewRequest("POST", "http://orders/v1/items%2Fa?id=7&x=%20", strings.NewReader(`{"sku":"apple"}`))
	r.Host = "orders"
	r.Header = http.Header{
		"Content-Type":     {"application/json"},
		"X-Multi":          {"a", "b"},
		"Status":           {"503"},
		"Mesh-Caller":      {"admin"},
		"Nats-Msg-Id":      {"x1"},
		"Connection":       {"X-Hop"},
		"X-Hop":            {"dropped"},
		"Keep-Alive":       {"timeout=5"},
		"Proxy-Connection": {"keep-alive"},
	}
	r.ContentLength = int64(len(`{"sku":"apple"}`))
	dump(&b, "HTTP request: reserved names escaped, hop-by-hop dropped", at(must(httpwire.EncodeRequest(r, wire.Limits{})), wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "POST"}))
	head := httptest.NewRequest("HEAD", "http://orders/", nil)
	dump(&b, "HTTP request: HEAD, no body", at(must(httpwire.EncodeRequest(head, wire.Limits{})), wire.Subject{Service: "orders", Subset: "v2", Caller: "web", Proto: wire.ProtoHTTP, Op: "HEAD"}))

	// HTTP replies.
	dump(&b, "HTTP reply: the service's own 503 with a Status header", must(httpwire.ResponseMsg(503, http.Header{"Status": {"503"}, "Description": {"No Responders"}}, nil, nil, wire.Limits{})))
	dump(&b, "HTTP reply: 200 with trailers", must(httpwire.ResponseMsg(200, http.Header{"Content-Type": {"text/plain"}, "Mesh-Error": {"service's own"}}, []byte("ok"), http.Header{"X-Sum": {"99"}}, wire.Limits{})))
	headResp := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 1234, Body: http.NoBody, Request: head}
	dump(&b, "HTTP reply to HEAD: the length a GET would get", must(httpwire.EncodeResponse(headResp, wire.Limits{})))

	// The first message of HTTP streams (docs/wire.md, "HTTP streams").
	up := httptest.NewRequest("PUT", "http://orders/files/a", nil)
	up.ContentLength, up.Trailer = -1, http.Header{"X-Sum": nil}
	dump(&b, "HTTP streamed request head: length unknown, a declared trailer", at(must(httpwire.EncodeRequestHead(up, wire.Limits{})), wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "PUT"}))
	ws := httptest.NewRequest("GET", "http://orders/chat", nil)
	ws.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}
	dump(&b, "HTTP upgrade request head", at(must(httpwire.EncodeRequestHead(ws, wire.Limits{})), wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}))
	dump(&b, "HTTP streamed answer head: sized, a declared trailer", must(httpwire.ResponseHead(200, http.Header{"Content-Type": {"application/octet-stream"}}, 1<<30, http.Header{"X-Sum": nil}, wire.Limits{})))
	dump(&b, "HTTP 101 answer head", must(httpwire.ResponseHead(101, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Accept": {"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}}, -1, nil, wire.Limits{})))

	// gRPC.
	greq := &grpcwire.Request{
		Method:   "/shop.Orders/Get",
		Metadata: metadata.MD{"x-user": {"ann"}, "trace-bin": {"\x00\x01\xff"}, "grpc-timeout": {"1S"}, "content-type": {"application/grpc"}},
		Payload:  []byte{0x0a, 0x03, 'a', 'b', 'c'},
	}
	dump(&b, "gRPC request: metadata, -bin in base64, transport keys dropped", at(must(grpcwire.EncodeRequest(greq, wire.Limits{})), wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: greq.Method}))
	dump(&b, "gRPC reply: OK with header and trailer metadata", must(grpcwire.ResponseMsg(&grpcwire.Response{
		Payload: []byte{0x08, 0x01}, Header: metadata.Pairs("x-instance", "orders-1"), Trailer: metadata.Pairs("x-cost", "3"), Status: status.New(codes.OK, ""),
	}, wire.Limits{})))
	st, err := status.New(codes.NotFound, "no such order: 100% gone\n").WithDetails(&errdetails.ErrorInfo{Reason: "missing", Domain: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	dump(&b, "gRPC reply: a service's error status with details", must(grpcwire.ResponseMsg(&grpcwire.Response{Payload: []byte("dropped"), Status: st}, wire.Limits{})))

	// gRPC streams.
	sreq := &grpcwire.Request{
		Method:   "/shop.Orders/Watch",
		Metadata: metadata.MD{"x-user": {"ann"}},
		Payload:  grpcwire.AppendMessage(nil, []byte{0x0a, 0x01, 'a'}),
		Stream:   true,
	}
	dump(&b, "gRPC stream request: marked, its one message framed, whole", at(must(grpcwire.EncodeRequest(sreq, wire.Limits{})), wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: sreq.Method}))
	shead, err := grpcwire.StreamHead(metadata.Pairs("x-instance", "orders-1"), wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dump(&b, "gRPC stream reply head: header metadata, no status", &nats.Msg{Header: shead})
	strailer, err := grpcwire.StreamTrailer(status.New(codes.Aborted, "moved"), metadata.Pairs("x-cost", "3"), wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dump(&b, "gRPC stream reply trailer: the status and trailer metadata", &nats.Msg{Header: strailer})
	whole := grpcwire.AppendMessage(grpcwire.AppendMessage(nil, []byte{0x08, 0x01}), []byte{0x08, 0x02})
	dump(&b, "gRPC stream reply read whole: two messages, then the status", must(grpcwire.ResponseMsg(&grpcwire.Response{
		Payload: whole, Header: metadata.Pairs("x-instance", "orders-1"), Trailer: metadata.Pairs("x-cost", "3"), Status: status.New(codes.OK, ""),
	}, wire.Limits{})))

	// Mesh errors, one per kind.
	for _, k := range []wire.Kind{wire.KindNoResponders, wire.KindOverloaded, wire.KindCircuitOpen, wire.KindRateLimited, wire.KindTimeout, wire.KindForbidden,
		wire.KindTooLarge, wire.KindHeadersTooLarge, wire.KindBadRequest, wire.KindNoRoute, wire.KindUpstream, wire.KindUpstreamRefused, wire.KindBrokerUnavailable, wire.KindConnectionLost, wire.KindInternal, wire.KindNoMeshFile, wire.KindEgressDenied} {
		e := &wire.Error{Kind: k, Message: "example"}
		if k == wire.KindOverloaded || k == wire.KindRateLimited {
			e.RetryAfter = 1500 * time.Millisecond
		}
		dump(&b, fmt.Sprintf("mesh error %s: HTTP %d, gRPC %s, retry-safe %v", k, e.HTTPStatus(), e.GRPCCode(), e.Retryable()), wire.ErrorMsg(e))
	}

	path := filepath.Join("testdata", "wire.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("the wire format changed; if that is deliberate, run go test ./wire -run TestGoldenWire -update and review the diff\n--- got\n%s", b.String())
	}
}
