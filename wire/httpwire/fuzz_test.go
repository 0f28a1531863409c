package httpwire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"golang.org/x/net/http/httpguts"

	"github.com/natsmesh/natsmesh/wire"
)

// fuzzHeader builds a NATS header the way nats.go reads one off the wire, so
// the decoders see only headers a real message can carry.
func fuzzHeader(raw string) (nats.Header, bool) {
	h, err := nats.DecodeHeadersMsg([]byte("NATS/1.0\r\n" + raw + "\r\n\r\n"))
	return h, err == nil
}

func FuzzDecodeHTTPRequest(f *testing.F) {
	f.Add("Mesh-Method: GET\r\nMesh-Path: /a%2Fb\r\nMesh-Query: x=1\r\nMesh-Host: orders\r\nAccept: */*", []byte(nil))
	f.Add("Mesh-Method: POST\r\nMesh-Path: /\r\nMesh-Timeout: 1.5s\r\nContent-Length: 99\r\nMesh-Trailer-X-Sum: 1", []byte("body"))
	f.Add("Mesh-Method: GET\r\nMesh-Path: //evil/x?y\r\nMesh-Hdr-Status: 503\r\nStatus: 503\r\nNats-Msg-Id: 1", []byte(nil))
	f.Add("Mesh-Method: G T\r\nMesh-Path: x", []byte(nil))
	f.Add("Mesh-Method: GET\r\nMesh-Timeout: -1s", []byte(nil))
	f.Add("Mesh-Method: GET\r\nMesh-Path: /\x7f\r\nConnection: close, X-A\r\nX-A: 1\r\nTransfer-Encoding: chunked", []byte("x"))
	f.Add("Mesh-Method: GET\r\nMesh-Path: /p\r\nMesh-Query: a=1 HTTP/0.9", []byte(nil))
	f.Add("Mesh-Method: GET\r\nMesh-Path: /p HTTP/1.0\r\nMesh-Host: a b", []byte(nil))
	f.Add("Mesh-Method: GET\r\nMesh-Path: /p\r\nMesh-Host: user:pw@x", []byte(nil))
	f.Add("Mesh-Method: GET\r\nMesh-Path: /p?q#f\r\nMesh-Query: a\tb", []byte(nil))
	f.Add("Mesh-Method: GET\r\nMesh-Path: /\xc3\xa9\r\nMesh-Query: q=\xc3\xa9\r\nMesh-Host: [::1]:80", []byte(nil))
	f.Fuzz(func(t *testing.T, raw string, data []byte) {
		h, ok := fuzzHeader(raw)
		if !ok {
			return
		}
		r, cancel, err := DecodeRequest(context.Background(), &nats.Msg{Subject: "mesh.a._.b.http.GET", Header: h, Data: data})
		if err != nil {
			var me *wire.Error
			if !errors.As(err, &me) || me.Kind != wire.KindBadRequest {
				t.Fatalf("DecodeRequest error %v (%T), want *wire.Error of kind bad-request", err, err)
			}
			return
		}
		defer cancel()
		if r.URL == nil || !strings.HasPrefix(r.URL.EscapedPath(), "/") {
			t.Fatalf("decoded URL %v does not start with /", r.URL)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || string(body) != string(data) || r.ContentLength != int64(len(data)) {
			t.Fatalf("body %q (len %d), %v; want %q", body, r.ContentLength, err, data)
		}
		checkUpgradeHeader(t, r.Header, h)
		checkHTTPHeader(t, r.Trailer)
		checkRequestLine(t, r)
	})
}

// checkUpgradeHeader is checkHTTPHeader for a decoded header that may be
// an upgrade's: Upgrade and Connection are there only as the message's
// Mesh-Upgrade sets them.
func checkUpgradeHeader(t *testing.T, h http.Header, msg nats.Header) {
	t.Helper()
	if up, ok := msg[HeaderUpgrade]; ok && (h.Get("Upgrade") != "" || h.Get("Connection") != "") {
		if len(up) != 1 || h.Get("Upgrade") != up[0] || h.Get("Connection") != "Upgrade" {
			t.Fatalf("Mesh-Upgrade %q decoded as Upgrade %q, Connection %q", up, h.Values("Upgrade"), h.Values("Connection"))
		}
		h = h.Clone()
		h.Del("Upgrade")
		h.Del("Connection")
	}
	checkHTTPHeader(t, h)
}

func FuzzDecodeStreamCall(f *testing.F) {
	f.Add("Mesh-Method: POST\r\nMesh-Path: /up\r\nContent-Length: 70000\r\nMesh-Trailer-X-Sum: ")
	f.Add("Mesh-Method: GET\r\nMesh-Path: /ws\r\nMesh-Upgrade: websocket\r\nSec-WebSocket-Key: abc")
	f.Add("Mesh-Method: GET\r\nMesh-Path: /ws\r\nMesh-Upgrade: a\x00b\r\nMesh-Upgrade: c")
	f.Add("Mesh-Method: POST\r\nMesh-Path: /\r\nContent-Length: -1\r\nContent-Length: 2")
	f.Add("Mesh-Method: POST\r\nMesh-Path: /\r\nContent-Length: +5\r\ncontent-length: 9")
	f.Fuzz(func(t *testing.T, raw string) {
		h, ok := fuzzHeader(raw)
		if !ok {
			return
		}
		body := io.NopCloser(strings.NewReader("streamed"))
		r, err := DecodeStreamCall(context.Background(), h, body, "")
		if err != nil {
			var me *wire.Error
			if !errors.As(err, &me) || me.Kind != wire.KindBadRequest {
				t.Fatalf("DecodeStreamCall error %v (%T), want *wire.Error of kind bad-request", err, err)
			}
			return
		}
		if r.Body != body || r.ContentLength < -1 {
			t.Fatalf("body %v, ContentLength %d", r.Body, r.ContentLength)
		}
		if cl := r.Header.Values("Content-Length"); r.ContentLength >= 0 && (len(cl) != 1 || cl[0] != strconv.FormatInt(r.ContentLength, 10)) ||
			r.ContentLength < 0 && len(cl) != 0 {
			t.Fatalf("Content-Length %q for a length of %d", cl, r.ContentLength)
		}
		for k, vs := range r.Trailer {
			if vs != nil {
				t.Fatalf("declared trailer %s has a value %q before the body's end", k, vs)
			}
		}
		checkUpgradeHeader(t, r.Header, h)
		checkHTTPHeader(t, r.Trailer)
		checkRequestLine(t, r)
	})
}

func FuzzDecodeResponseHead(f *testing.F) {
	f.Add("Mesh-Status: 200\r\nContent-Type: text/event-stream\r\nMesh-Trailer-X-Sum: ")
	f.Add("Mesh-Status: 101\r\nMesh-Upgrade: websocket\r\nSec-WebSocket-Accept: x")
	f.Add("Mesh-Status: 200\r\nMesh-Upgrade: websocket\r\nContent-Length: 5")
	f.Add("Mesh-Status: 200\r\nContent-Length: 99999999999999999999999")
	f.Add("Nats-Service-Error: gone\r\nNats-Service-Error-Code: 410")
	f.Add("Mesh-Error: timeout")
	f.Fuzz(func(t *testing.T, raw string) {
		h, ok := fuzzHeader(raw)
		if !ok {
			return
		}
		resp, err := DecodeResponseHead(h)
		if err != nil {
			var me *wire.Error
			if !errors.As(err, &me) {
				t.Fatalf("DecodeResponseHead error %v (%T), want *wire.Error", err, err)
			}
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || resp.ContentLength < -1 {
			t.Fatalf("status %d, length %d", resp.StatusCode, resp.ContentLength)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols && (resp.Header.Get("Upgrade") != "" || resp.Header.Get("Connection") != "") {
			t.Fatalf("a %d answer with Upgrade %q", resp.StatusCode, resp.Header.Get("Upgrade"))
		}
		checkUpgradeHeader(t, resp.Header, h)
		checkHTTPHeader(t, resp.Trailer)
	})
}

// checkRequestLine: a decoded request, as the receiving agent sends it to
// its service, is one request line that reads back the same (issue 9 item
// 17: Mesh-Query "a=1 HTTP/0.9" forged the protocol version).
func checkRequestLine(t *testing.T, r *http.Request) {
	t.Helper()
	out := r.Clone(context.Background())
	out.RequestURI = ""
	out.Body = http.NoBody
	out.ContentLength = 0
	out.Trailer = nil
	out.Header = http.Header{}
	var buf bytes.Buffer
	if err := out.Write(&buf); err != nil {
		t.Fatalf("accepted request does not serialize: %v (Host %q, URL %q)", err, r.Host, r.URL)
	}
	back, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("accepted request serializes to %q, which does not parse: %v", buf.String(), err)
	}
	if back.Method != r.Method || back.RequestURI != r.URL.RequestURI() || back.Host != r.Host || back.Proto != "HTTP/1.1" {
		t.Fatalf("request line reads back %s %q %s Host %q, want %s %q HTTP/1.1 Host %q",
			back.Method, back.RequestURI, back.Proto, back.Host, r.Method, r.URL.RequestURI(), r.Host)
	}
}

func FuzzDecodeHTTPResponse(f *testing.F) {
	f.Add("Mesh-Status: 200\r\nContent-Type: text/plain\r\nMesh-Trailer-Grpc-Status: 0", []byte("hi"))
	f.Add("Mesh-Status: 503\r\nMesh-Hdr-Status: 503", []byte(nil))
	f.Add("Mesh-Error: timeout\r\nMesh-Error-Message: slow\r\nRetry-After: 3", []byte(nil))
	f.Add("Mesh-Error: time\x00out\r\nMesh-Error-Message: a\x01b", []byte(nil))
	f.Add("Nats-Service-Error: not found\r\nNats-Service-Error-Code: 404", []byte(nil))
	f.Add("Nats-Service-Error-Code: 99999999999999999999", []byte(nil))
	f.Add("Mesh-Status: 1000\r\nX: y", []byte("z"))
	f.Add("Mesh-Status: 200\r\nConnection: X-Secret\r\nX-Secret: 1\r\nTransfer-Encoding: chunked", []byte("z"))
	f.Add("Mesh-Status: 200\r\nMesh-Hdr-: empty name\r\nX-Nul: a\x00b\r\nMesh-Trailer-Bad Name: 1", []byte(nil))
	f.Add("X-Native: 1\r\nX-Nul: a\x00b\r\nBad Name: 1\r\nConnection: X-Native", []byte("native"))
	f.Fuzz(func(t *testing.T, raw string, data []byte) {
		h, ok := fuzzHeader(raw)
		if !ok {
			return
		}
		resp, err := DecodeResponse(&nats.Msg{Header: h, Data: data})
		if err != nil {
			var me *wire.Error
			if !errors.As(err, &me) {
				t.Fatalf("DecodeResponse error %v (%T), want *wire.Error", err, err)
			}
			if s := me.HTTPStatus(); s < 400 || s > 599 {
				t.Fatalf("mesh error %v maps to status %d", me, s)
			}
			if !httpguts.ValidHeaderFieldValue(string(me.Kind)) || !httpguts.ValidHeaderFieldValue(me.Message) {
				t.Fatalf("mesh error kind %q message %q cannot go in an HTTP header", me.Kind, me.Message)
			}
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || int64(len(body)) != resp.ContentLength {
			t.Fatalf("body of %d bytes, ContentLength %d, %v", len(body), resp.ContentLength, err)
		}
		checkUpgradeHeader(t, resp.Header, h)
		checkHTTPHeader(t, resp.Trailer)
	})
}

// checkHTTPHeader fails unless h is what Go's HTTP server and client accept,
// with no hop-by-hop header.
func checkHTTPHeader(t *testing.T, h http.Header) {
	t.Helper()
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) || isHopByHop(k, nil) {
			t.Fatalf("decoded header name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				t.Fatalf("decoded header %s: %q", k, v)
			}
		}
	}
}
