package httpwire

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// TestStreamedRequestHead: issue 18. The first message of a request whose
// body streams carries the request line and headers, the length when
// known, the declared trailers without values and an upgrade's
// Mesh-Upgrade; it reads nothing of the body, and decodes back to the
// request the service gets, its body the stream.
func TestStreamedRequestHead(t *testing.T) {
	tests := []struct {
		name     string
		length   int64
		header   http.Header
		trailer  http.Header
		wantHead nats.Header // fields the head must have ("" : any value)
		noHead   []string
		wantUp   string
	}{
		{name: "sized", length: 70000,
			wantHead: nats.Header{"Content-Length": {"70000"}}, noHead: []string{HeaderUpgrade}},
		{name: "chunked with trailers", length: -1, trailer: http.Header{"X-Sum": nil, "Mesh-Own": nil},
			wantHead: nats.Header{"Mesh-Trailer-X-Sum": {""}, "Mesh-Trailer-Mesh-Hdr-Mesh-Own": {""}}, noHead: []string{"Content-Length"}},
		{name: "upgrade", header: http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"}},
			wantHead: nats.Header{HeaderUpgrade: {"websocket"}, "Sec-Websocket-Key": {"k"}}, noHead: []string{"Upgrade", "Connection"}, wantUp: "websocket"},
		{name: "upgrade token without Connection", header: http.Header{"Upgrade": {"websocket"}},
			noHead: []string{HeaderUpgrade, "Upgrade"}},
		{name: "h2c, which ends at the listener", header: http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}},
			noHead: []string{HeaderUpgrade, "Upgrade"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingReader{r: strings.NewReader("the body")}
			r := httptest.NewRequest("POST", "http://orders/up?x=1", io.NopCloser(body))
			r.ContentLength = tt.length
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			r.Trailer = tt.trailer
			m, err := EncodeRequestHead(r, wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if body.n != 0 || len(m.Data) != 0 {
				t.Fatalf("read %d bytes of the body, payload %q", body.n, m.Data)
			}
			for k, vs := range tt.wantHead {
				if !reflect.DeepEqual(m.Header[k], vs) {
					t.Errorf("head %s: %q, want %q", k, m.Header[k], vs)
				}
			}
			for _, k := range tt.noHead {
				if _, ok := m.Header[k]; ok {
					t.Errorf("head has %s: %q", k, m.Header[k])
				}
			}
			stream := io.NopCloser(strings.NewReader("streamed"))
			got, err := DecodeStreamCall(context.Background(), m.Header, stream, "POST")
			if err != nil {
				t.Fatal(err)
			}
			wantLen := tt.length
			if wantLen == 0 {
				wantLen = -1
			}
			if got.Body != stream || got.ContentLength != wantLen || got.URL.RequestURI() != "/up?x=1" || got.Host != "orders" {
				t.Errorf("decoded %s %s Host %s, length %d", got.Method, got.URL, got.Host, got.ContentLength)
			}
			if Upgrade(got.Header) != tt.wantUp {
				t.Errorf("decoded upgrade %q, want %q", Upgrade(got.Header), tt.wantUp)
			}
			for k := range tt.trailer {
				if vs, ok := got.Trailer[k]; !ok || vs != nil {
					t.Errorf("declared trailer %s: %q, %v; want declared, without a value", k, vs, ok)
				}
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestStreamedAnswerHead: issue 18. The first message of an answer whose
// body streams, and its reading: the length when known, the declared
// trailers (their values from the stream's end), a 101's Mesh-Upgrade.
func TestStreamedAnswerHead(t *testing.T) {
	m, err := ResponseHead(200, http.Header{"Content-Type": {"text/event-stream"}, "Connection": {"close"}},
		-1, http.Header{"X-Sum": nil}, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := DecodeResponseHead(m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != -1 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Connection") != "" || resp.Header.Get("Content-Length") != "" || !reflect.DeepEqual(resp.Trailer, http.Header{"X-Sum": nil}) {
		t.Errorf("decoded %d, length %d, header %v, trailer %v", resp.StatusCode, resp.ContentLength, resp.Header, resp.Trailer)
	}

	m, _ = ResponseHead(200, http.Header{}, 1<<30, nil, wire.Limits{})
	if resp, _ := DecodeResponseHead(m.Header); resp.ContentLength != 1<<30 || resp.Header.Get("Content-Length") != "1073741824" {
		t.Errorf("a sized answer decodes with length %d", resp.ContentLength)
	}

	m, _ = ResponseHead(101, http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Accept": {"a"}}, -1, nil, wire.Limits{})
	if m.Header.Get(HeaderUpgrade) != "websocket" {
		t.Fatalf("101 head %v", m.Header)
	}
	resp, err = DecodeResponseHead(m.Header)
	if err != nil || resp.StatusCode != 101 || Upgrade(resp.Header) != "websocket" || resp.Header.Get("Sec-Websocket-Accept") != "a" {
		t.Errorf("decoded %v %v, %v", resp, resp.Header, err)
	}

	// Mesh-Upgrade makes an upgrade of a 101 only.
	resp, _ = DecodeResponseHead(nats.Header{wire.HeaderStatus: {"200"}, HeaderUpgrade: {"websocket"}})
	if resp.Header.Get("Upgrade") != "" {
		t.Errorf("a 200 decoded with Upgrade %q", resp.Header.Get("Upgrade"))
	}
	// A mesh error is an error.
	if _, err := DecodeResponseHead(nats.Header{wire.HeaderError: {"timeout"}}); !errors.Is(err, wire.ErrTimeout) {
		t.Errorf("a mesh error head decoded as %v", err)
	}
	// A head over the header bounds is refused.
	many := http.Header{}
	for i := range 101 {
		many.Set("X-"+strings.Repeat("a", i+1), "v")
	}
	if _, err := ResponseHead(200, many, -1, nil, wire.Limits{}); !errors.Is(err, wire.ErrHeadersTooLarge) {
		t.Errorf("101 headers: %v", err)
	}
}

// TestStreamTrailer: issue 18. A trailer at a stream's end crosses as a
// whole message's does: escaped, and read back.
func TestStreamTrailer(t *testing.T) {
	in := http.Header{"X-Sum": {"1", "2"}, "Mesh-Error": {"the service's"}, "Declared-Only": nil}
	h := TrailerHeader(in)
	want := nats.Header{"Mesh-Trailer-X-Sum": {"1", "2"}, "Mesh-Trailer-Mesh-Hdr-Mesh-Error": {"the service's"}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("TrailerHeader %v, want %v", h, want)
	}
	if got := ReadTrailer(h, false); !reflect.DeepEqual(got, http.Header{"X-Sum": {"1", "2"}, "Mesh-Error": {"the service's"}}) {
		t.Errorf("a request's: %v", got)
	}
	// In an answer, a service's own Mesh-Error never reads as the mesh's.
	if got := ReadTrailer(h, true); got.Get("Mesh-Error") != "" || got.Get("Mesh-Hdr-Mesh-Error") != "the service's" {
		t.Errorf("an answer's: %v", got)
	}
	if TrailerHeader(nil) != nil || ReadTrailer(nil, true) != nil {
		t.Error("no trailer is nil")
	}
}
