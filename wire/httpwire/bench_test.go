package httpwire

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/wire"
)

// benchHeader is what a browser or an API client typically sends.
func benchHeader() http.Header {
	return http.Header{
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Authorization":   {"Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"},
		"Content-Type":    {"application/json"},
		"Cookie":          {"session=abc123; theme=dark"},
		"Traceparent":     {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"},
		"X-Request-Id":    {"7f1d3c1e-8b9a-4f5e-9c1d-2b3a4c5d6e7f"},
		"Connection":      {"keep-alive"},
	}
}

var benchBody = bytes.Repeat([]byte("x"), 1024)

func benchRequest() *http.Request {
	r := httptest.NewRequest("POST", "http://orders/v1/items/42?expand=lines", bytes.NewReader(benchBody))
	r.Header = benchHeader()
	return r
}

func BenchmarkEncodeHTTPRequest(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	r := benchRequest().WithContext(ctx)
	body := bytes.NewReader(benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		body.Reset(benchBody)
		r.Body = io.NopCloser(body)
		if _, err := encodeHTTPAt(r, "mesh.orders._.web.http.POST", wire.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHTTPRequest(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	m, err := encodeHTTPAt(benchRequest().WithContext(ctx), "mesh.orders._.web.http.POST", wire.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		_, cancel, err := DecodeRequest(context.Background(), m)
		if err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}

func benchResponseHeader() http.Header {
	return http.Header{
		"Cache-Control":  {"no-store"},
		"Content-Type":   {"application/json"},
		"Date":           {"Wed, 26 Nov 2025 01:00:00 GMT"},
		"Etag":           {`"33a64df551425fcc55e4d42a148795d9f25f89d4"`},
		"Server":         {"orders/1.2.3"},
		"Set-Cookie":     {"session=abc123; Path=/; HttpOnly", "theme=dark; Path=/"},
		"Vary":           {"Accept-Encoding"},
		"X-Request-Id":   {"7f1d3c1e-8b9a-4f5e-9c1d-2b3a4c5d6e7f"},
		"Content-Length": {"1024"},
	}
}

func BenchmarkHTTPResponseMsg(b *testing.B) {
	h := benchResponseHeader()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := ResponseMsg(200, h, benchBody, nil, wire.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHTTPResponse(b *testing.B) {
	m, err := ResponseMsg(200, benchResponseHeader(), benchBody, nil, wire.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := DecodeResponse(m); err != nil {
			b.Fatal(err)
		}
	}
}
