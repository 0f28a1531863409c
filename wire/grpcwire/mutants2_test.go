package grpcwire

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/wire"
)

// Tests that kill the mutants of this package no other test noticed
// (docs/testing.md): the edges of what the codec accepts, and the header
// bounds counted to the byte.

// headerBytes is what the header limits count for one value of key k:
// "k: v\r\n", as nats.go writes it.
func headerBytes(k, v string) int { return len(k) + len(v) + 4 }

// TestResponseHeaderBoundsExact: a reply's metadata, trailer metadata,
// status message and details each count against the header limits, to
// the value and to the byte: at the limit the reply is made, one under
// it the answer is headers-too-large.
func TestResponseHeaderBoundsExact(t *testing.T) {
	st, err := status.New(codes.NotFound, "no such order").WithDetails(&errdetails.ErrorInfo{Reason: "GONE"})
	if err != nil {
		t.Fatal(err)
	}
	resp := &Response{Header: metadata.Pairs("a", "1"), Trailer: metadata.Pairs("bb", "22", "bb", "333"), Status: st}
	m, err := ResponseMsg(resp, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	count := 5
	size := headerBytes("a", "1") + headerBytes("bb", "22") + headerBytes("bb", "333") +
		headerBytes(HeaderGRPCMessage, m.Header.Get(HeaderGRPCMessage)) + headerBytes(HeaderGRPCDetails, m.Header.Get(HeaderGRPCDetails))
	for _, tc := range []struct {
		lim wire.Limits
		ok  bool
	}{
		{wire.Limits{MaxHeaders: count, MaxHeaderBytes: size}, true},
		{wire.Limits{MaxHeaders: count - 1, MaxHeaderBytes: size}, false},
		{wire.Limits{MaxHeaders: count, MaxHeaderBytes: size - 1}, false},
	} {
		_, err := ResponseMsg(resp, tc.lim)
		if e := wire.FromError(err); (err == nil) != tc.ok || !tc.ok && e.Kind != wire.KindHeadersTooLarge {
			t.Errorf("%d values of %d bytes, limits %d and %d: %v, want ok %v", count, size, tc.lim.MaxHeaders, tc.lim.MaxHeaderBytes, err, tc.ok)
		}
	}
	// A status without details carries no details header.
	m, err = ResponseMsg(&Response{Status: status.New(codes.NotFound, "gone")}, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Header[HeaderGRPCDetails]; ok {
		t.Errorf("a status without details: %s %q", HeaderGRPCDetails, v)
	}
}

// TestRequestHeaderBoundsExact: a request's metadata counts against the
// header limits to the value and the byte when it is encoded, and a raw
// client's request, decoded, against the listeners' defaults the same
// way.
func TestRequestHeaderBoundsExact(t *testing.T) {
	req := &Request{Method: "/pkg.Svc/Get", Metadata: metadata.Pairs("k", "vvv", "k", "w", "other", "x")}
	size := headerBytes("k", "vvv") + headerBytes("k", "w") + headerBytes("other", "x")
	for _, tc := range []struct {
		lim wire.Limits
		ok  bool
	}{
		{wire.Limits{MaxHeaders: 3, MaxHeaderBytes: size}, true},
		{wire.Limits{MaxHeaders: 2, MaxHeaderBytes: size}, false},
		{wire.Limits{MaxHeaders: 3, MaxHeaderBytes: size - 1}, false},
	} {
		_, err := EncodeRequest(req, tc.lim)
		if (err == nil) != tc.ok {
			t.Errorf("EncodeRequest of 3 values of %d bytes, limits %d and %d: %v, want ok %v", size, tc.lim.MaxHeaders, tc.lim.MaxHeaderBytes, err, tc.ok)
		}
	}

	// Decoding, at the defaults: values, then bytes.
	values := func(n int) nats.Header {
		h := nats.Header{}
		for i := range n {
			h.Set("x-h"+strconv.Itoa(i), "v")
		}
		return h
	}
	bytesOf := func(n int) nats.Header {
		return nats.Header{"x-big": {strings.Repeat("a", n-headerBytes("x-big", ""))}}
	}
	for name, tc := range map[string]struct {
		h  nats.Header
		ok bool
	}{
		"100 values":     {values(wire.DefaultMaxHeaders), true},
		"101 values":     {values(wire.DefaultMaxHeaders + 1), false},
		"64 KiB exactly": {bytesOf(wire.DefaultMaxHeaderBytes), true},
		"a byte more":    {bytesOf(wire.DefaultMaxHeaderBytes + 1), false},
	} {
		_, err := DecodeCall(tc.h, nil, "/pkg.Svc/Get")
		if e := wire.FromError(err); (err == nil) != tc.ok || !tc.ok && e.Kind != wire.KindHeadersTooLarge {
			t.Errorf("DecodeCall, %s: %v, want ok %v", name, err, tc.ok)
		}
	}
}

// TestMethodNameEdges: the shortest method ("/a/b"), the longest
// (1,024 bytes), and each end of the printable range are valid; one
// byte more, an empty part, a third slash, a space or DEL are not.
func TestMethodNameEdges(t *testing.T) {
	long := "/" + strings.Repeat("s", maxMethodLen-3) + "/m"
	for _, tc := range []struct {
		method string
		ok     bool
	}{
		{"/a/b", true},
		{long, true},
		{long + "x", false},
		{"/a/", false},
		{"//b", false},
		{"/ab", false},
		{"/a/b/c", false},
		{"/ab/", false},
		{"/a//b", false},
		{"/!/~", true},
		{"/a /b", false},
		{"/a/b\x7f", false},
		{"/a/b\x1f", false},
	} {
		_, err := EncodeRequest(&Request{Method: tc.method}, wire.Limits{})
		if (err == nil) != tc.ok {
			t.Errorf("method %.40q (%d bytes): %v, want ok %v", tc.method, len(tc.method), err, tc.ok)
		}
	}
}

// TestMetadataEdges: a key's bytes are [0-9a-z-_.], each range's ends
// included; a text value's are %x20-%x7E, both ends included. A value
// outside is refused on encoding, and skipped when a raw client's
// message is decoded; a -bin value is read with or without padding.
func TestMetadataEdges(t *testing.T) {
	for _, k := range []string{"a", "z", "0", "9", "-", "_", ".", "az09"} {
		if _, err := EncodeRequest(&Request{Method: "/a/b", Metadata: metadata.MD{k: {"v"}}}, wire.Limits{}); err != nil {
			t.Errorf("key %q: %v", k, err)
		}
	}
	for _, k := range []string{"a/", "a:", "a@", "a[", "a`", "a{", "a,"} {
		if _, err := EncodeRequest(&Request{Method: "/a/b", Metadata: metadata.MD{k: {"v"}}}, wire.Limits{}); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	for _, tc := range []struct {
		v  string
		ok bool
	}{{" x", true}, {"x~", true}, {"x\x1f", false}, {"x\x7f", false}} {
		_, err := EncodeRequest(&Request{Method: "/a/b", Metadata: metadata.MD{"k": {tc.v}}}, wire.Limits{})
		if (err == nil) != tc.ok {
			t.Errorf("value %q: %v, want ok %v", tc.v, err, tc.ok)
		}
		req, err := DecodeCall(nats.Header{"k": {tc.v}}, nil, "/a/b")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(req.Metadata.Get("k")); got != map[bool]int{true: 1, false: 0}[tc.ok] {
			t.Errorf("decoded value %q: %d values, want ok %v", tc.v, got, tc.ok)
		}
	}
	for _, v := range []string{"YQ==", "YQ"} {
		req, err := DecodeCall(nats.Header{"k-bin": {v}}, nil, "/a/b")
		if err != nil || len(req.Metadata.Get("k-bin")) != 1 || req.Metadata.Get("k-bin")[0] != "a" {
			t.Errorf("-bin value %q: %v %v, want \"a\"", v, req, err)
		}
	}
}

// TestStatusMessageOneByte: a status message of one byte that gRPC
// percent-encodes (a control byte, DEL, '%', a leading space, a byte
// past ASCII) is sent encoded, and reads back the same.
func TestStatusMessageOneByte(t *testing.T) {
	for msg, want := range map[string]string{
		"\x01": "%01", "\x1f": "%1F", "\x7f": "%7F", "%": "%25", " ": "%20", "\xff": "%FF",
		"~": "~", "a b": "a b", "%4": "%254",
		// Past the first byte to encode, a space and '~' stay.
		"a b\n": "a b%0A", "~\n": "~%0A",
	} {
		m, err := ResponseMsg(&Response{Status: status.New(codes.Internal, msg)}, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(HeaderGRPCMessage); got != want {
			t.Errorf("status message %q sent as %q, want %q", msg, got, want)
		}
		resp, err := DecodeResponse(m)
		if err != nil || resp.Status.Message() != msg {
			t.Errorf("status message %q read back as %v, %v", msg, resp, err)
		}
	}
	// A raw reply's malformed escapes stay as they are.
	for _, v := range []string{"%4", "%", "a%4", "%zz", "%4g"} {
		resp, err := DecodeResponse(&nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"13"}, HeaderGRPCMessage: {v}}})
		if err != nil || resp.Status.Message() != v {
			t.Errorf("malformed message %q read as %v, %v", v, resp, err)
		}
	}
}

// TestFramedEmptyMessage: a Framed of the prefix alone is an empty
// message, sent as no bytes.
func TestFramedEmptyMessage(t *testing.T) {
	out, err := (RawCodec{}).Marshal(Framed(AppendMessage(nil, nil)))
	if err != nil || out.Len() != 0 {
		t.Errorf("an empty framed message marshaled as %q, %v", out.Materialize(), err)
	}
}

// TestMeshStatusRetryInfo: the status of a mesh error tells a gRPC
// client when to retry (errdetails.RetryInfo) only when the error says
// so (Retry-After): one without it carries no RetryInfo, which a client
// would read as "retry at once".
func TestMeshStatusRetryInfo(t *testing.T) {
	retryInfo := func(st *status.Status) *errdetails.RetryInfo {
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				return ri
			}
		}
		return nil
	}
	if ri := retryInfo(Status(&wire.Error{Kind: wire.KindUpstream, Message: "down"})); ri != nil {
		t.Errorf("a mesh error without Retry-After: RetryInfo %v", ri)
	}
	st := Status(&wire.Error{Kind: wire.KindOverloaded, Message: "busy", RetryAfter: 2 * time.Second})
	if ri := retryInfo(st); ri == nil || ri.RetryDelay.AsDuration() != 2*time.Second {
		t.Errorf("overloaded with Retry-After 2s: RetryInfo %v", ri)
	}
	if StatusKind(st) != wire.KindOverloaded {
		t.Errorf("StatusKind = %q", StatusKind(st))
	}
}

// TestSplitMethod: a full method splits into its service and method.
func TestSplitMethod(t *testing.T) {
	for in, want := range map[string][2]string{
		"/pkg.Orders/Get": {"pkg.Orders", "Get"},
		"/a.b.C/D":        {"a.b.C", "D"},
		"Get":             {"", "Get"},
	} {
		if s, m := SplitMethod(in); s != want[0] || m != want[1] {
			t.Errorf("SplitMethod(%q) = %q, %q; want %q, %q", in, s, m, want[0], want[1])
		}
	}
}

// TestMessageReaderMaxExact: a message of exactly Max bytes is read; one
// byte more is too large.
func TestMessageReaderMaxExact(t *testing.T) {
	if got, err := readAll(t, AppendMessage(nil, []byte("hello")), 0, 5); err != nil || len(got) != 1 || string(got[0]) != "hello" {
		t.Errorf("a message of Max bytes: %q, %v", got, err)
	}
	_, err := readAll(t, AppendMessage(nil, []byte("hello!")), 0, 5)
	if e := wire.FromError(err); err == nil || e.Kind != wire.KindTooLarge {
		t.Errorf("a message of Max+1 bytes: %v, want too-large", err)
	}
}

// TestMessageReaderAllocatesWhatArrives: a prefix that announces a large
// message makes the reader allocate for the bytes that came, not for
// the length announced: a peer cannot have it hold Max for five bytes
// sent.
func TestMessageReaderAllocatesWhatArrives(t *testing.T) {
	piece := AppendMessage(nil, make([]byte, DefaultMaxMessage))[:MessagePrefixLen+1]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var r MessageReader
	r.Feed(piece)
	if _, ok, err := r.Next(); ok || err != nil {
		t.Fatalf("one byte of a large message: ok %v, %v", ok, err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("one byte of a message announced as %d bytes: %d bytes allocated", DefaultMaxMessage, n)
	}
	runtime.KeepAlive(&r)
}

// TestStreamMarkerWithoutValue: a raw client's request whose stream
// marker header is present without a value is a bad request.
func TestStreamMarkerWithoutValue(t *testing.T) {
	_, err := DecodeCall(nats.Header{HeaderGRPCStream: {}}, nil, "/a/b")
	if e := wire.FromError(err); err == nil || e.Kind != wire.KindBadRequest {
		t.Errorf("a stream marker without a value: %v, want bad-request", err)
	}
}

// TestStatusMessageLowerCaseEscapes: a raw reply's status message may
// escape with lower-case hex digits, as gRPC's decoder accepts; each
// end of the range is read.
func TestStatusMessageLowerCaseEscapes(t *testing.T) {
	for v, want := range map[string]string{"%0a": "\n", "%0f": "\x0f", "%4a": "J", "%6f": "o"} {
		resp, err := DecodeResponse(&nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"13"}, HeaderGRPCMessage: {v}}})
		if err != nil || resp.Status.Message() != want {
			t.Errorf("message %q read as %v, %v; want %q", v, resp, err, want)
		}
	}
}

// TestParseTimeoutLengths: grpc-timeout is one to eight digits and a
// unit: two bytes and nine are read, one and ten are not.
func TestParseTimeoutLengths(t *testing.T) {
	for s, want := range map[string]time.Duration{"1S": time.Second, "12345678n": 12345678 * time.Nanosecond, "S": 0, "123456789n": 0} {
		d, ok := ParseTimeout(s)
		if d != want || ok != (want > 0) {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v", s, d, ok, want)
		}
	}
}
