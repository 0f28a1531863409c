package grpcwire

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/natsmesh/natsmesh/wire"
)

// (e) the wire format.
func TestGRPCRequestRoundTrip(t *testing.T) {
	subject := wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	tests := []struct {
		name    string
		req     Request
		lim     wire.Limits
		wantMD  metadata.MD
		wantTO  time.Duration // approximate; 0 = none
		wantErr wire.Kind
	}{
		{name: "plain", req: Request{Method: "/pkg.Svc/Get", Payload: []byte("abc")}, wantMD: nil},
		{
			name: "metadata",
			req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{
				"x-a": {"1", "2"}, "bin-bin": {"\x00\xff\x10"}, "status": {"reserved"}, "description": {"d"},
				"mesh-path": {"/x"}, "nats-msg-id": {"n"}, "Upper": {"u"}, "user-agent": {"ua"}, "grpc-trace-bin": {"\x01"},
			}},
			wantMD: metadata.MD{
				"x-a": {"1", "2"}, "bin-bin": {"\x00\xff\x10"}, "status": {"reserved"}, "description": {"d"},
				"mesh-path": {"/x"}, "nats-msg-id": {"n"}, "upper": {"u"}, "user-agent": {"ua"}, "grpc-trace-bin": {"\x01"},
			},
		},
		{
			name: "transport metadata dropped",
			req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{
				":authority": {"orders"}, "content-type": {"application/grpc"}, "te": {"trailers"},
				"grpc-encoding": {"gzip"}, "grpc-accept-encoding": {"gzip"}, "connection": {"close"}, "mesh-caller": {"forged"},
				"keep": {"me"},
			}},
			wantMD: metadata.MD{"keep": {"me"}},
		},
		{name: "timeout", req: Request{Method: "/pkg.Svc/Get", Timeout: 1500 * time.Millisecond}, wantTO: 1500 * time.Millisecond},
		{name: "grpc-timeout", req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"grpc-timeout": {"250m"}}}, wantTO: 250 * time.Millisecond},
		{name: "bad method", req: Request{Method: "pkg.Svc/Get"}, wantErr: wire.KindBadRequest},
		{name: "method with space", req: Request{Method: "/pkg.Svc/G et"}, wantErr: wire.KindBadRequest},
		{name: "bad key", req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x y": {"1"}}}, wantErr: wire.KindBadRequest},
		{name: "control byte", req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x": {"a\r\nb: c"}}}, wantErr: wire.KindBadRequest},
		{name: "too many", req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x": make([]string, 101)}}, wantErr: wire.KindHeadersTooLarge},
		{name: "header bytes", req: Request{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x": {string(bytes.Repeat([]byte("v"), 65<<10))}}}, wantErr: wire.KindHeadersTooLarge},
		{name: "too large", req: Request{Method: "/pkg.Svc/Get", Payload: make([]byte, 1<<20)}, wantErr: wire.KindTooLarge},
		{name: "small limit", req: Request{Method: "/pkg.Svc/Get", Payload: make([]byte, 1000)}, lim: wire.Limits{MaxPayload: 1000}, wantErr: wire.KindTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := encodeGRPCAt(subject, &tt.req, tt.lim)
			if tt.wantErr != "" {
				if e := wire.FromError(err); err == nil || e.Kind != tt.wantErr {
					t.Fatalf("err %v, want kind %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRequest(m)
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.req.Method || !bytes.Equal(got.Payload, tt.req.Payload) {
				t.Errorf("got %+v", got)
			}
			if !mdEqual(got.Metadata, tt.wantMD) {
				t.Errorf("metadata %v, want %v", got.Metadata, tt.wantMD)
			}
			if d := got.Timeout - tt.wantTO; d > 0 || d < -100*time.Millisecond {
				t.Errorf("timeout %v, want about %v", got.Timeout, tt.wantTO)
			}
		})
	}
}

func mdEqual(a, b metadata.MD) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb := b[k]
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if va[i] != vb[i] {
				return false
			}
		}
	}
	return true
}

func TestDecodeGRPCRequestErrors(t *testing.T) {
	good := wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	tests := []struct {
		name    string
		msg     *nats.Msg
		wantErr bool
		method  string
	}{
		{name: "method from subject", msg: &nats.Msg{Subject: good, Header: nats.Header{}}, method: "/pkg.Svc/Get"},
		{name: "header and subject agree", msg: &nats.Msg{Subject: good, Header: nats.Header{HeaderGRPCMethod: {"/pkg.Svc/Get"}}}, method: "/pkg.Svc/Get"},
		{name: "header contradicts subject", msg: &nats.Msg{Subject: good, Header: nats.Header{HeaderGRPCMethod: {"/pkg.Svc/Delete"}}}, wantErr: true},
		{name: "no method", msg: &nats.Msg{Subject: "other", Header: nats.Header{}}, wantErr: true},
		{name: "non-mesh subject", msg: &nats.Msg{Subject: "other", Header: nats.Header{HeaderGRPCMethod: {"/a/b"}}}, method: "/a/b"},
		{name: "bad timeout", msg: &nats.Msg{Subject: good, Header: nats.Header{wire.HeaderTimeout: {"soon"}}}, wantErr: true},
		{name: "bad base64", msg: &nats.Msg{Subject: good, Header: nats.Header{"x-bin": {"!!!"}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeRequest(tt.msg)
			if tt.wantErr {
				if !errors.Is(err, wire.ErrBadRequest) {
					t.Fatalf("err %v, want bad request", err)
				}
				return
			}
			if err != nil || req.Method != tt.method {
				t.Fatalf("got %+v, %v", req, err)
			}
		})
	}
}

func TestGRPCResponseRoundTrip(t *testing.T) {
	withDetails, err := status.New(codes.InvalidArgument, " leading space, 100%, \r\n, ünïcode").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f", Description: "d"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		resp Response
	}{
		{name: "ok", resp: Response{Payload: []byte("out"), Header: metadata.Pairs("a", "1"), Trailer: metadata.Pairs("b", "2", "c-bin", "\x00")}},
		{name: "nil status is ok", resp: Response{}},
		{name: "error", resp: Response{Status: status.New(codes.NotFound, "gone"), Trailer: metadata.Pairs("status", "x")}},
		{name: "details", resp: Response{Status: withDetails}},
		{name: "code beyond the known", resp: Response{Status: status.New(codes.Code(99), "odd")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ResponseMsg(&tt.resp, wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.Get(HeaderGRPCStatus) == "" {
				t.Fatal("no status header")
			}
			got, err := DecodeResponse(m)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got.Status.Proto(), tt.resp.Status.Proto()) && tt.resp.Status != nil {
				t.Errorf("status %v, want %v", got.Status.Proto(), tt.resp.Status.Proto())
			}
			if got.Status.Code() != tt.resp.Status.Code() {
				t.Errorf("code %v", got.Status.Code())
			}
			if msg := StatusMessage(m.Header); msg != got.Status.Message() {
				t.Errorf("StatusMessage %q, want the decoder's %q", msg, got.Status.Message())
			}
			if !bytes.Equal(got.Payload, tt.resp.Payload) || !mdEqual(got.Header, tt.resp.Header) || !mdEqual(got.Trailer, tt.resp.Trailer) {
				t.Errorf("got %+v, want %+v", got, tt.resp)
			}
		})
	}
}

func TestDecodeGRPCResponseForeign(t *testing.T) {
	tests := []struct {
		name     string
		msg      *nats.Msg
		wantKind wire.Kind
		wantCode codes.Code
		payload  string
	}{
		{name: "mesh error", msg: wire.ErrorMsg(&wire.Error{Kind: wire.KindOverloaded, Message: "busy", RetryAfter: 2 * time.Second}), wantKind: wire.KindOverloaded},
		{name: "nats no responders", msg: &nats.Msg{Header: nats.Header{"Status": {"503"}}}, wantKind: wire.KindNoResponders},
		{name: "micro error", msg: &nats.Msg{Header: nats.Header{"Nats-Service-Error": {"nope"}, "Nats-Service-Error-Code": {"404"}}}, wantCode: codes.Unimplemented},
		{name: "micro error odd code", msg: &nats.Msg{Header: nats.Header{"Nats-Service-Error": {"nope"}, "Nats-Service-Error-Code": {"x"}}}, wantCode: codes.Unknown},
		{name: "plain nats answer", msg: &nats.Msg{Data: []byte("raw")}, wantCode: codes.OK, payload: "raw"},
		{name: "bad status", msg: &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"x"}}}, wantKind: wire.KindInternal},
		{name: "bad details", msg: &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"3"}, HeaderGRPCDetails: {"%%%"}}}, wantKind: wire.KindInternal},
		{name: "no payload on error", msg: &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"3"}}, Data: []byte("junk")}, wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := DecodeResponse(tt.msg)
			if tt.wantKind != "" {
				var e *wire.Error
				if !errors.As(err, &e) || e.Kind != tt.wantKind {
					t.Fatalf("err %v, want kind %s", err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status.Code() != tt.wantCode || string(resp.Payload) != tt.payload {
				t.Errorf("got %v %q", resp.Status, resp.Payload)
			}
			if msg := StatusMessage(tt.msg.Header); msg != resp.Status.Message() {
				t.Errorf("StatusMessage %q, want the decoder's %q", msg, resp.Status.Message())
			}
		})
	}
}

func TestGRPCStatus(t *testing.T) {
	svcStatus := status.New(codes.NotFound, "no such order")
	tests := []struct {
		name       string
		err        error
		wantCode   codes.Code
		wantReason string
	}{
		{name: "nil", err: nil, wantCode: codes.OK},
		{name: "service status", err: svcStatus.Err(), wantCode: codes.NotFound},
		{name: "no responders", err: wire.ErrNoResponders, wantCode: codes.Unavailable, wantReason: "no-responders"},
		{name: "timeout", err: &wire.Error{Kind: wire.KindTimeout}, wantCode: codes.DeadlineExceeded, wantReason: "timeout"},
		{name: "wrapped mesh error", err: errors.Join(errors.New("x"), &wire.Error{Kind: wire.KindForbidden}), wantCode: codes.PermissionDenied, wantReason: "forbidden"},
		{name: "too large", err: &wire.Error{Kind: wire.KindTooLarge}, wantCode: codes.ResourceExhausted, wantReason: "too-large"},
		{name: "headers too large", err: &wire.Error{Kind: wire.KindHeadersTooLarge}, wantCode: codes.ResourceExhausted, wantReason: "headers-too-large"},
		{name: "upstream", err: &wire.Error{Kind: wire.KindUpstream}, wantCode: codes.Unavailable, wantReason: "upstream-unavailable"},
		{name: "no route", err: &wire.Error{Kind: wire.KindNoRoute}, wantCode: codes.Unimplemented, wantReason: "no-route"},
		{name: "bad request", err: &wire.Error{Kind: wire.KindBadRequest}, wantCode: codes.InvalidArgument, wantReason: "bad-request"},
		{name: "internal", err: &wire.Error{Kind: wire.KindInternal}, wantCode: codes.Internal, wantReason: "internal"},
		{name: "ctx deadline", err: context.DeadlineExceeded, wantCode: codes.DeadlineExceeded},
		{name: "ctx canceled", err: context.Canceled, wantCode: codes.Canceled},
		{name: "nats no responders", err: nats.ErrNoResponders, wantCode: codes.Unavailable, wantReason: "no-responders"},
		{name: "nats timeout", err: nats.ErrTimeout, wantCode: codes.DeadlineExceeded, wantReason: "timeout"},
		{name: "other", err: errors.New("boom"), wantCode: codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Status(tt.err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code %v, want %v", st.Code(), tt.wantCode)
			}
			if got := string(StatusKind(st)); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
		})
	}
	st := Status(&wire.Error{Kind: wire.KindOverloaded, RetryAfter: 3 * time.Second})
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil || ri.RetryDelay.AsDuration() != 3*time.Second {
		t.Errorf("retry info %v", st.Details())
	}
}

func TestRawCodec(t *testing.T) {
	c := RawCodec{}
	if c.Name() != "proto" {
		t.Errorf("name %q", c.Name())
	}
	for _, v := range []any{RawFrame("a"), ptr(RawFrame("a")), []byte("a"), ptr([]byte("a"))} {
		bs, err := c.Marshal(v)
		if err != nil || string(bs.Materialize()) != "a" {
			t.Errorf("Marshal(%T) = %q, %v", v, bs.Materialize(), err)
		}
		var f RawFrame
		if err := c.Unmarshal(bs, &f); err != nil || string(f) != "a" {
			t.Errorf("Unmarshal = %q, %v", f, err)
		}
	}
	if _, err := c.Marshal("a"); err == nil {
		t.Error("Marshal(string) did not fail")
	}
}

func ptr[T any](v T) *T { return &v }

// TestDecodeCallHeaderLimits (issue 19): a request message from a raw NATS
// client is held to the listeners' header limits.
func TestDecodeCallHeaderLimits(t *testing.T) {
	many := nats.Header{}
	for i := range 1000 {
		many.Set("x-h"+strconv.Itoa(i), "v")
	}
	for name, h := range map[string]nats.Header{
		"a 900 KB header": {"x-big": {strings.Repeat("a", 900<<10)}},
		"1,000 headers":   many,
	} {
		_, err := DecodeCall(h, nil, "/pkg.Svc/M")
		if e := wire.FromError(err); err == nil || e.Kind != wire.KindHeadersTooLarge {
			t.Errorf("%s: %v, want %s", name, err, wire.KindHeadersTooLarge)
		}
	}
	if _, err := DecodeCall(nats.Header{"x-a": {"b"}}, nil, "/pkg.Svc/M"); err != nil {
		t.Errorf("within the limits: %v", err)
	}
}
