package meshhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// upstreamCall serves the request r makes through an Upstream for
// service "orders" at base.
func upstreamCall(t *testing.T, base string, r *http.Request, onRefused func(error)) (*nats.Msg, error) {
	t.Helper()
	m, err := httpwire.EncodeRequest(r, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m.Subject = wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: r.Method}.String()
	u, _ := url.Parse(base)
	up := &Upstream{Base: u, Transport: NewUpstreamTransport(), OnRefused: onRefused}
	defer up.Transport.(*http.Transport).CloseIdleConnections()
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: r.Method, Header: m.Header, Body: pipeline.Body{Bytes: m.Data}}
	reply, err := up.ServeCall(context.Background(), c)
	if err != nil {
		return nil, err
	}
	return reply.Msg(), nil
}

// TestHTTPUpstreamSendsTrailers: issue 9 item 18. Request trailers cross
// NATS and reach the service (the body is sent chunked), with or without a
// body.
func TestHTTPUpstreamSendsTrailers(t *testing.T) {
	type seen struct{ body, trailer, te string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{string(b), r.Trailer.Get("X-Checksum"), strings.Join(r.TransferEncoding, ",")}
	}))
	defer srv.Close()
	for _, body := range []string{"payload", ""} {
		t.Run("body "+body, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://orders/upload", strings.NewReader(body))
			r.Trailer = http.Header{"X-Checksum": {"abc123"}}
			if _, err := upstreamCall(t, srv.URL, r, nil); err != nil {
				t.Fatal(err)
			}
			s := <-got
			if s.body != body || s.trailer != "abc123" || s.te != "chunked" {
				t.Errorf("service saw body %q, trailer %q, transfer-encoding %q; want %q, abc123, chunked", s.body, s.trailer, s.te, body)
			}
		})
	}
}

// TestHTTPUpstreamHostDefault: issue 9 item 18. A message without Mesh-Host
// reaches the service with the service's name as Host, not the upstream's
// address.
func TestHTTPUpstreamHostDefault(t *testing.T) {
	host := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host <- r.Host }))
	defer srv.Close()
	r := httptest.NewRequest("GET", "/", nil)
	r.Host, r.URL.Host = "", ""
	if _, err := upstreamCall(t, srv.URL, r, nil); err != nil {
		t.Fatal(err)
	}
	if h := <-host; h != "orders" {
		t.Errorf("service saw Host %q, want orders", h)
	}
}

// TestHTTPUpstreamRefused: issue 9 item 1. A service that refuses the
// connection is answered upstream-refused (retry-safe: nothing ran), and
// OnRefused is told.
func TestHTTPUpstreamRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var told atomic.Int32
	for _, method := range []string{"GET", "POST"} {
		_, err := upstreamCall(t, "http://"+addr, httptest.NewRequest(method, "/", strings.NewReader("x")), func(error) { told.Add(1) })
		if !errors.Is(err, wire.ErrUpstreamRefused) || !wire.FromError(err).Retryable() {
			t.Errorf("%s: got %v, want a retryable upstream-refused", method, err)
		}
	}
	if told.Load() != 2 {
		t.Errorf("OnRefused called %d times, want 2", told.Load())
	}
}

// TestHTTPUpstreamZeroTransportAddsNoAcceptEncoding: issue 17 item 8. An
// Upstream without a Transport sends no Accept-Encoding of its own (as
// http.DefaultTransport would, "gzip", then decompressing the answer
// behind the client's back), and passes the client's own unchanged.
func TestHTTPUpstreamZeroTransportAddsNoAcceptEncoding(t *testing.T) {
	seen := make(chan []string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Values("Accept-Encoding")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	up := &Upstream{Base: u}
	for _, sent := range []string{"", "gzip, br", "identity"} {
		t.Run("sent "+sent, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://orders/", nil)
			if sent != "" {
				r.Header.Set("Accept-Encoding", sent)
			}
			m, err := httpwire.EncodeRequest(r, wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET", Header: m.Header, Body: pipeline.Body{Bytes: m.Data}}
			if _, err := up.ServeCall(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			got := <-seen
			var want []string
			if sent != "" {
				want = []string{sent}
			}
			if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
				t.Errorf("service saw Accept-Encoding %q, want %q", got, want)
			}
		})
	}
	defaultUpstreamTransport().CloseIdleConnections()
}
