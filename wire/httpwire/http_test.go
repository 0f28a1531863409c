package httpwire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// runServer starts a broker (meshtest.Broker without JetStream or lame-duck
// mode) and returns its nats-server, stopped when the test ends.
// encodeHTTPAt is EncodeRequest on subject, with the Mesh-Timeout of
// r's deadline, as the outbound pipeline sends it.
func encodeHTTPAt(r *http.Request, subject string, lim wire.Limits) (*nats.Msg, error) {
	m, err := EncodeRequest(r, lim)
	if err != nil {
		return nil, err
	}
	m.Subject = subject
	if d, ok := r.Context().Deadline(); ok {
		wire.SetTimeout(m.Header, time.Until(d))
	}
	return m, nil
}

// request is a NATS request whose failure is a mesh error, as the
// outbound pipeline makes it.
func request(ctx context.Context, nc *nats.Conn, m *nats.Msg) (*nats.Msg, error) {
	reply, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return nil, wire.FromError(err)
	}
	return reply, nil
}

func runServer(t testing.TB) *server.Server {
	t.Helper()
	return meshtest.Broker(t, func(c *broker.Config) {
		c.NoJetStream = true
		c.LameDuckDuration = -1
	}).Server()
}

// connect opens a client connection over TCP to s, closed when the test ends.
func connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestHeaderNameEscaping(t *testing.T) {
	tests := []struct {
		name, escaped string
	}{
		{"Content-Type", "Content-Type"},
		{"X-Custom", "X-Custom"},
		{"Status", "Mesh-Hdr-Status"},
		{"status", "Mesh-Hdr-status"},
		{"Description", "Mesh-Hdr-Description"},
		{"Mesh-Status", "Mesh-Hdr-Mesh-Status"},
		{"mesh-error", "Mesh-Hdr-mesh-error"},
		{"Mesh-Hdr-X", "Mesh-Hdr-Mesh-Hdr-X"},
		{"Mesh-Trailer-X", "Mesh-Hdr-Mesh-Trailer-X"},
		{"Nats-Msg-Id", "Mesh-Hdr-Nats-Msg-Id"},
		{"NATS-Service-Error", "Mesh-Hdr-NATS-Service-Error"},
		{"Meshy", "Meshy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wire.EscapeHeaderName(tt.name); got != tt.escaped {
				t.Fatalf("EscapeHeaderName(%q) = %q, want %q", tt.name, got, tt.escaped)
			}
			if got, ok := wire.UnescapeHeaderName(tt.escaped); !ok || got != tt.name {
				t.Fatalf("UnescapeHeaderName(%q) = %q, %v; want %q", tt.escaped, got, ok, tt.name)
			}
		})
	}
	for _, meta := range []string{wire.HeaderMethod, wire.HeaderStatus, wire.HeaderError, wire.HeaderCaller, "Nats-Msg-Id", "Status", "Description", "mesh-path"} {
		t.Run("metadata "+meta, func(t *testing.T) {
			if got, ok := wire.UnescapeHeaderName(meta); ok {
				t.Fatalf("UnescapeHeaderName(%q) = %q, true; metadata must not pass as a service header", meta, got)
			}
		})
	}
}

// TestServiceStatusHeaderIsNotNoResponders proves end to end that a
// service's own "Status: 503" header with an empty body reaches the caller as
// the service's 503, where the same bytes unescaped read as NATS "no
// responders".
func TestServiceStatusHeaderIsNotNoResponders(t *testing.T) {
	s := runServer(t)
	nc := connect(t, s)
	service := connect(t, s)
	_, err := service.Subscribe("svc.escaped", func(m *nats.Msg) {
		reply, err := ResponseMsg(503, http.Header{"Status": {"503"}, "Description": {"No Responders"}}, nil, nil, wire.Limits{})
		if err != nil {
			t.Error(err)
			return
		}
		m.RespondMsg(reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = service.Subscribe("svc.raw", func(m *nats.Msg) {
		m.RespondMsg(&nats.Msg{Header: nats.Header{"Status": {"503"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	service.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("escaped", func(t *testing.T) {
		reply, err := request(ctx, nc, &nats.Msg{Subject: "svc.escaped"})
		if err != nil {
			t.Fatalf("Request: %v (the service's 503 was taken for no responders)", err)
		}
		resp, err := DecodeResponse(reply)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 503 || resp.Header.Get("Status") != "503" || resp.Header.Get("Description") != "No Responders" {
			t.Fatalf("got %d %v, want the service's 503 with its Status header", resp.StatusCode, resp.Header)
		}
	})
	t.Run("unescaped would be no responders", func(t *testing.T) {
		_, err := request(ctx, nc, &nats.Msg{Subject: "svc.raw"})
		if !errors.Is(err, wire.ErrNoResponders) || !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("Request = %v, want no responders (the hazard the escaping prevents)", err)
		}
	})
}

func TestEncodeHTTPRequestHeaders(t *testing.T) {
	r := httptest.NewRequest("POST", "http://orders/v1/items", strings.NewReader("x"))
	r.Header = http.Header{
		"Connection":          {"keep-alive, X-Conn-Scoped"},
		"X-Conn-Scoped":       {"dropped"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Authorization": {"Basic x"},
		"Proxy-Connection":    {"keep-alive"},
		"Te":                  {"trailers"},
		"Trailer":             {"X-Sum"},
		"Transfer-Encoding":   {"identity"},
		"Upgrade":             {"websocket"},
		"Accept":              {"text/html", "application/json"},
		"x-lower-case":        {"kept as is"},
		"X-Dup":               {"1", "2", "3"},
		"Traceparent":         {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":          {"congo=t61rcWkgMzE"},
		"Status":              {"503"},
		"Mesh-Caller":         {"forged"},
		"Nats-Msg-Id":         {"dup"},
		"Bad Name":            {"dropped"},
		"Trailer:X":           {"dropped"},
		"":                    {"dropped"},
	}
	r.TransferEncoding = nil
	m, err := encodeHTTPAt(r, "mesh.orders._.web.http.POST", wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t)
	got := meshtest.ViaNATS(t, connect(t, s), m)
	dec, cancel, err := DecodeRequest(context.Background(), got)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	want := http.Header{
		"Accept":         {"text/html", "application/json"},
		"x-lower-case":   {"kept as is"},
		"X-Dup":          {"1", "2", "3"},
		"Traceparent":    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":     {"congo=t61rcWkgMzE"},
		"Status":         {"503"},
		"Mesh-Caller":    {"forged"},
		"Nats-Msg-Id":    {"dup"},
		"Content-Length": {"1"},
	}
	if !reflect.DeepEqual(dec.Header, want) {
		t.Fatalf("decoded headers\n%v\nwant\n%v", dec.Header, want)
	}
	if got.Header.Get(wire.HeaderCaller) != "" {
		t.Fatal("a client's Mesh-Caller header reached NATS unescaped")
	}
}

// TestHTTPRequestRoundTrip sends real requests to a real server whose handler
// encodes and decodes what it received, and compares the two.
func TestHTTPRequestRoundTrip(t *testing.T) {
	s := runServer(t)
	nc := connect(t, s)
	type result struct {
		orig, dec *http.Request
		origBody  []byte
		decBody   []byte
		err       error
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res result
		defer func() { results <- res }()
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		r = r.WithContext(ctx)
		// Keep a copy of the body and of what Go's server parsed.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		res.orig, res.origBody = r, body
		m, err := encodeHTTPAt(r, "mesh.orders._.web.http."+wire.EscapeToken(r.Method), wire.Limits{})
		if err != nil {
			res.err = err
			WriteError(w, err)
			return
		}
		dec, decCancel, err := DecodeRequest(context.Background(), meshtest.ViaNATS(t, nc, m))
		if err != nil {
			res.err = err
			return
		}
		defer decCancel()
		res.dec = dec
		res.decBody, _ = io.ReadAll(dec.Body)
		// Trailers are known only after the body is read.
		res.orig.Trailer = r.Trailer.Clone()
	}))
	defer srv.Close()

	tests := []struct {
		name    string
		method  string
		target  string
		host    string
		header  http.Header
		body    string
		chunked bool
		trailer http.Header
	}{
		{name: "get", method: "GET", target: "/v1/items", host: "orders"},
		{name: "escaped slash", method: "GET", target: "/files/a%2Fb/c%20d", host: "orders"},
		{name: "query", method: "GET", target: "/search?q=a+b&q=%26&empty=", host: "orders:8080"},
		{name: "post body", method: "POST", target: "/v1/items", host: "orders", header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}}, body: `{"id":1}`},
		{name: "chunked with trailers", method: "PUT", target: "/upload", host: "orders", body: strings.Repeat("z", 5000), chunked: true, trailer: http.Header{"X-Checksum": {"abc"}}},
		{name: "custom method", method: "PURGE", target: "/cache", host: "orders"},
		{name: "trace context", method: "GET", target: "/", host: "orders", header: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "Tracestate": {"a=1,b=2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(strings.NewReader(tt.body)) // unknown length: chunked
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.target, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			req.Trailer = tt.trailer
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			res := <-results
			if res.err != nil {
				t.Fatal(res.err)
			}
			o, d := res.orig, res.dec
			if d.Method != o.Method || d.URL.EscapedPath() != o.URL.EscapedPath() || d.URL.RawQuery != o.URL.RawQuery || d.Host != o.Host || d.RequestURI != o.RequestURI {
				t.Fatalf("request line: got %s %s ? %s host %s uri %s, want %s %s ? %s host %s uri %s",
					d.Method, d.URL.EscapedPath(), d.URL.RawQuery, d.Host, d.RequestURI, o.Method, o.URL.EscapedPath(), o.URL.RawQuery, o.Host, o.RequestURI)
			}
			if d.URL.Path != o.URL.Path {
				t.Fatalf("path %q, want %q", d.URL.Path, o.URL.Path)
			}
			if !bytes.Equal(res.decBody, res.origBody) || d.ContentLength != int64(len(res.origBody)) {
				t.Fatalf("body of %d bytes (ContentLength %d), want %d", len(res.decBody), d.ContentLength, len(res.origBody))
			}
			wantHeader := o.Header.Clone()
			if len(res.origBody) > 0 {
				wantHeader.Set("Content-Length", fmt.Sprint(len(res.origBody)))
			}
			if !reflect.DeepEqual(d.Header, wantHeader) {
				t.Fatalf("header\n%v\nwant\n%v", d.Header, wantHeader)
			}
			if len(tt.trailer) > 0 && !reflect.DeepEqual(d.Trailer, tt.trailer) {
				t.Fatalf("trailer %v, want %v", d.Trailer, tt.trailer)
			}
			dl, ok := d.Context().Deadline()
			if !ok || time.Until(dl) > 2*time.Second || time.Until(dl) < time.Second {
				t.Fatalf("deadline in %v (set: %v), want about 2s", time.Until(dl), ok)
			}
		})
	}
}

func TestHTTPResponseRoundTrip(t *testing.T) {
	s := runServer(t)
	nc := connect(t, s)
	tests := []struct {
		name    string
		status  int
		header  http.Header
		body    string
		trailer http.Header
	}{
		{"ok", 200, http.Header{"Content-Type": {"text/plain"}}, "hello", nil},
		{"no content", 204, http.Header{}, "", nil},
		{"service 503 with Status header", 503, http.Header{"Status": {"503"}, "Retry-After": {"7"}}, "", nil},
		{"multi-value and case", 200, http.Header{"Set-Cookie": {"a=1", "b=2"}, "x-lower": {"v"}}, "x", nil},
		{"trailers", 200, http.Header{"Content-Type": {"application/grpc"}}, "data", http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {"ok"}}},
		{"mesh-named service header", 418, http.Header{"Nats-Service-Error": {"x"}, "Mesh-Foo": {"y"}}, "teapot", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ResponseMsg(tt.status, tt.header, []byte(tt.body), tt.trailer, wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := DecodeResponse(meshtest.ViaNATS(t, nc, m))
			if err != nil {
				t.Fatalf("DecodeResponse: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			want := tt.header.Clone()
			want.Set("Content-Length", fmt.Sprint(len(tt.body)))
			if !reflect.DeepEqual(resp.Header, want) {
				t.Fatalf("header %v, want %v", resp.Header, want)
			}
			if !reflect.DeepEqual(resp.Trailer, tt.trailer) {
				t.Fatalf("trailer %v, want %v", resp.Trailer, tt.trailer)
			}
		})
	}
}

func TestDecodeNATSNativeReplies(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		data   string
		status int
		body   string
	}{
		{"plain reply", nil, "pong", 200, "pong"},
		{"reply with headers", nats.Header{"X-A": {"1"}}, "{}", 200, "{}"},
		{"micro 404", nats.Header{"Nats-Service-Error": {"not found"}, "Nats-Service-Error-Code": {"404"}}, "", 404, "not found\n"},
		{"micro 503 with body", nats.Header{"Nats-Service-Error": {"down"}, "Nats-Service-Error-Code": {"503"}}, `{"e":1}`, 503, `{"e":1}`},
		{"micro non-HTTP code", nats.Header{"Nats-Service-Error": {"x"}, "Nats-Service-Error-Code": {"E42"}}, "", 500, "x\n"},
		{"micro 2xx code", nats.Header{"Nats-Service-Error": {"x"}, "Nats-Service-Error-Code": {"200"}}, "", 500, "x\n"},
		{"micro code only", nats.Header{"Nats-Service-Error-Code": {"400"}}, "", 400, "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := DecodeResponse(&nats.Msg{Header: tt.header, Data: []byte(tt.data)})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	manyHeaders := http.Header{}
	for i := range 101 {
		manyHeaders.Add(fmt.Sprintf("X-H%d", i), "v")
	}
	bigHeader := http.Header{"X-Big": {strings.Repeat("a", 64<<10)}}
	tests := []struct {
		name   string
		header http.Header
		te     []string
		body   string
		cl     int64
		lim    wire.Limits
		kind   wire.Kind
		status int
	}{
		{name: "body over max_payload", body: strings.Repeat("x", 1000), cl: 1000, lim: wire.Limits{MaxPayload: 1000}, kind: wire.KindTooLarge, status: 413},
		{name: "declared length over max_payload", body: "short", cl: 2 << 20, kind: wire.KindTooLarge, status: 413},
		{name: "chunked body over max_payload", body: strings.Repeat("x", 2000), cl: -1, lim: wire.Limits{MaxPayload: 1000}, kind: wire.KindTooLarge, status: 413},
		{name: "headers push over max_payload", header: http.Header{"X-A": {strings.Repeat("a", 990)}}, body: "x", cl: 1, lim: wire.Limits{MaxPayload: 1000}, kind: wire.KindTooLarge, status: 413},
		{name: "101 headers", header: manyHeaders, kind: wire.KindHeadersTooLarge, status: 431},
		{name: "64KiB of headers", header: bigHeader, kind: wire.KindHeadersTooLarge, status: 431},
		{name: "Content-Length and Transfer-Encoding", header: http.Header{"Content-Length": {"5"}}, te: []string{"chunked"}, body: "hello", cl: -1, kind: wire.KindBadRequest, status: 400},
		{name: "Content-Length and Transfer-Encoding header", header: http.Header{"Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}}, body: "hello", cl: 5, kind: wire.KindBadRequest, status: 400},
		{name: "conflicting Content-Length", header: http.Header{"Content-Length": {"5", "6"}}, body: "hello", cl: 5, kind: wire.KindBadRequest, status: 400},
		{name: "conflicting Content-Length list", header: http.Header{"Content-Length": {"5, 6"}}, body: "hello", cl: 5, kind: wire.KindBadRequest, status: 400},
		{name: "bad Content-Length", header: http.Header{"Content-Length": {"-1"}}, body: "hello", cl: 5, kind: wire.KindBadRequest, status: 400},
		{name: "repeated equal Content-Length is fine", header: http.Header{"Content-Length": {"5", "5"}}, body: "hello", cl: 5},
		{name: "100 headers are fine", header: func() http.Header { h := manyHeaders.Clone(); h.Del("X-H0"); return h }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", strings.NewReader(tt.body))
			r.Header = tt.header
			if r.Header == nil {
				r.Header = http.Header{}
			}
			r.TransferEncoding = tt.te
			r.ContentLength = tt.cl
			_, err := encodeHTTPAt(r, "mesh.a._.b.http.POST", tt.lim)
			if tt.kind == "" {
				if err != nil {
					t.Fatalf("EncodeRequest: %v", err)
				}
				return
			}
			var me *wire.Error
			if !errors.As(err, &me) || me.Kind != tt.kind || me.HTTPStatus() != tt.status {
				t.Fatalf("EncodeRequest = %v, want %s (%d)", err, tt.kind, tt.status)
			}
		})
	}
	t.Run("response too large", func(t *testing.T) {
		_, err := ResponseMsg(200, nil, make([]byte, 2000), nil, wire.Limits{MaxPayload: 1000})
		if !errors.Is(err, wire.ErrTooLarge) {
			t.Fatalf("ResponseMsg = %v, want too-large", err)
		}
	})
}

// TestGoServerFraming shows what Go's own server does with ambiguous framing
// before any handler runs, and that the mesh answers 400 to what reaches it.
func TestGoServerFraming(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := encodeHTTPAt(r, "mesh.a._.b.http.POST", wire.Limits{}); err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("X-Framing", fmt.Sprintf("te=%q cl=%d clheader=%q", r.TransferEncoding, r.ContentLength, r.Header.Values("Content-Length")))
		w.WriteHeader(299)
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		raw     string
		status  int
		framing string
	}{
		{"conflicting Content-Length: Go answers 400 itself", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, ""},
		{"Content-Length list: Go answers 400 itself", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello", 400, ""},
		{"two Transfer-Encodings: Go answers 501 itself", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, ""},
		// RFC 9112 section 6.3 lets a server frame by Transfer-Encoding alone;
		// Go does, and drops Content-Length, so the request a handler sees
		// (and the mesh forwards) is no longer ambiguous.
		{"Content-Length and chunked: Go frames by chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 299, `te=["chunked"] cl=-1 clheader=[]`},
		{"equal repeated Content-Length: Go merges", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 299, `te=[] cl=5 clheader=["5"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, tt.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("X-Framing") != tt.framing {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Framing"), tt.status, tt.framing)
			}
		})
	}
}

func TestWriteHTTPResponseTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := ResponseMsg(200, http.Header{"Content-Type": {"text/plain"}}, []byte("body"), http.Header{"X-Sum": {"7"}}, wire.Limits{})
		if err != nil {
			t.Error(err)
			return
		}
		resp, err := DecodeResponse(m)
		if err != nil {
			t.Error(err)
			return
		}
		WriteResponse(w, resp)
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Trailer.Get("X-Sum") != "7" {
		t.Fatalf("got %q trailer %v", body, resp.Trailer)
	}
}

// TestDecodeDropsForgedFraming: a raw NATS client may send any header
// spelling; the decoder's own Content-Length and Host must be the only ones.
func TestDecodeDropsForgedFraming(t *testing.T) {
	m := &nats.Msg{
		Subject: "mesh.orders._.web.http.POST",
		Header: nats.Header{
			wire.HeaderMethod: {"POST"},
			wire.HeaderPath:   {"/x"},
			wire.HeaderHost:   {"orders"},
			"content-length":  {"0"},
			"host":            {"evil.example"},
			"HOST":            {"evil2.example"},
			"X-Ok":            {"1"},
		},
		Data: []byte("GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
	r, cancel, err := DecodeRequest(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	want := http.Header{"Content-Length": {fmt.Sprint(len(m.Data))}, "X-Ok": {"1"}}
	if !reflect.DeepEqual(r.Header, want) || r.Host != "orders" {
		t.Errorf("header %v host %q, want %v host orders", r.Header, r.Host, want)
	}
	reply := &nats.Msg{Header: nats.Header{"content-length": {"3"}, "X-A": {"b"}}, Data: []byte("hello world")}
	resp, err := DecodeResponse(reply)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header; !reflect.DeepEqual(got, http.Header{"Content-Length": {"11"}, "X-A": {"b"}}) {
		t.Errorf("native reply header %v", got)
	}
}

func TestDecodeMethodMustMatchSubject(t *testing.T) {
	m := &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"DELETE"}, wire.HeaderPath: {"/x"}}}
	if _, _, err := DecodeRequest(context.Background(), m); !errors.Is(err, wire.ErrBadRequest) {
		t.Fatalf("DELETE on a GET subject: %v, want bad-request", err)
	}
	m.Subject = "plain.subject" // a gateway's nats: route has no method token
	if _, cancel, err := DecodeRequest(context.Background(), m); err != nil {
		t.Fatal(err)
	} else {
		cancel()
	}
}

func TestServiceMeshErrorHeaderStaysTheService(t *testing.T) {
	m, err := ResponseMsg(503, http.Header{"Mesh-Error": {"no-responders"}, "Mesh-Error-Message": {"x"}}, nil, nil, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := DecodeResponse(m)
	if err != nil {
		t.Fatalf("a service's own 503 came back as a mesh error: %v", err)
	}
	if resp.Header.Get(wire.HeaderError) != "" || resp.Header.Get("Mesh-Hdr-Mesh-Error") != "no-responders" {
		t.Errorf("header %v: the service's Mesh-Error must stay escaped", resp.Header)
	}
}

func TestHEADKeepsContentLength(t *testing.T) {
	req, _ := http.NewRequest(http.MethodHead, "http://orders/big", nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: 5 << 20,
		Body: http.NoBody, Request: req}
	m, err := EncodeResponse(resp, wire.Limits{})
	if err != nil {
		t.Fatalf("HEAD of a 5 MiB resource: %v", err)
	}
	got, err := DecodeResponse(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.ContentLength != 5<<20 || got.Header.Get("Content-Length") != fmt.Sprint(5<<20) {
		t.Errorf("HEAD answer Content-Length %d / %q, want %d", got.ContentLength, got.Header.Get("Content-Length"), 5<<20)
	}
}

func TestEncodeHTTPRequestClientSideHost(t *testing.T) {
	r, err := http.NewRequest("GET", "http://orders:8080/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = ""
	m, err := encodeHTTPAt(r, "mesh.orders._.web.http.GET", wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(wire.HeaderHost); got != "orders:8080" {
		t.Fatalf("Mesh-Host %q, want the URL's host", got)
	}
}

// TestDecodeHTTPRequestRefusesForgedRequestLines: issue 9 item 17. A raw NATS
// client must not write into the upstream's request line or Host.
func TestDecodeHTTPRequestRefusesForgedRequestLines(t *testing.T) {
	for _, tt := range []struct{ name, header, value string }{
		{"query with a forged version", wire.HeaderQuery, "a=1 HTTP/0.9"},
		{"query with a tab", wire.HeaderQuery, "a=1\tb"},
		{"query with a control byte", wire.HeaderQuery, "a=\x01"},
		{"path with a fragment", wire.HeaderPath, "/p#frag"},
		{"path with a space", wire.HeaderPath, "/p HTTP/1.0"},
		{"path with a query", wire.HeaderPath, "/p?admin=1"},
		{"path with DEL", wire.HeaderPath, "/p\x7f"},
		{"host with a space", wire.HeaderHost, "a b"},
		{"host with userinfo", wire.HeaderHost, "user:pw@x"},
		{"host with a path", wire.HeaderHost, "x/y"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/p"}}
			h.Set(tt.header, tt.value)
			_, _, err := DecodeRequest(context.Background(), &nats.Msg{Subject: "mesh.a._.b.http.GET", Header: h})
			if !errors.Is(err, wire.ErrBadRequest) {
				t.Errorf("%s %q: got %v, want bad-request", tt.header, tt.value, err)
			}
		})
	}
	h := nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/p%20q"}, wire.HeaderQuery: {"a=%20&b=\xc3\xa9"}, wire.HeaderHost: {"[::1]:8080"}}
	r, cancel, err := DecodeRequest(context.Background(), &nats.Msg{Header: h})
	if err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	cancel()
	if r.Host != "[::1]:8080" || r.URL.RequestURI() != "/p%20q?a=%20&b=\xc3\xa9" {
		t.Errorf("decoded Host %q URI %q", r.Host, r.URL.RequestURI())
	}
}
