package httpwire

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

func TestValidHost(t *testing.T) {
	for host, want := range map[string]bool{
		"orders":                    true,
		"v2.orders.mesh":            true,
		"orders.svc.cluster.local.": true,
		"API.example.com":           true,
		"my_service":                true,
		"127.0.0.1:9191":            true,
		"[::1]:8080":                true,
		"[fe80::1%25eth0]":          true,
		"orders:65535":              true,
		"*":                         false,
		"orders.*":                  false,
		"x:1:2":                     false,
		"orders:":                   false,
		"orders:65536":              false,
		"orders:+80":                false,
		"user@orders":               false,
		"a..b":                      false,
		".orders":                   false,
		"[::1":                      false,
		"[orders]":                  false,
		strings.Repeat("a", 5000):   false,
		strings.Repeat("a", 64):     false, // a label over 63 bytes
		"orders/x":                  false,
		"orders%2Fx":                false,
	} {
		if got := validHost(host); got != want {
			t.Errorf("validHost(%.40q) = %v, want %v", host, got, want)
		}
	}
}

// TestRefusedRequests: issue 19. What no server should receive is refused
// with bad-request, by the encoder every HTTP entry point uses and by the
// decoder every inbound call goes through (a raw NATS client included):
// TRACE, a fragment in the query, a Host that is no host[:port].
func TestRefusedRequests(t *testing.T) {
	base := func() nats.Header {
		return nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/stock"}, wire.HeaderHost: {"inventory"}}
	}
	for name, edit := range map[string]func(nats.Header){
		"TRACE":               func(h nats.Header) { h.Set(wire.HeaderMethod, "TRACE") },
		"fragment in query":   func(h nats.Header) { h.Set(wire.HeaderQuery, "a=1#frag") },
		"host *":              func(h nats.Header) { h.Set(wire.HeaderHost, "*") },
		"host orders.*":       func(h nats.Header) { h.Set(wire.HeaderHost, "orders.*") },
		"host x:1:2":          func(h nats.Header) { h.Set(wire.HeaderHost, "x:1:2") },
		"host of 5,000 bytes": func(h nats.Header) { h.Set(wire.HeaderHost, strings.Repeat("a", 5000)) },
	} {
		h := base()
		edit(h)
		method := h.Get(wire.HeaderMethod)
		_, err := DecodeCall(context.Background(), h, nil, method)
		var e *wire.Error
		if !errors.As(err, &e) || e.Kind != wire.KindBadRequest {
			t.Errorf("decode %s: %v, want bad-request", name, err)
		}
	}
	if _, err := DecodeCall(context.Background(), base(), nil, "GET"); err != nil {
		t.Errorf("a plain call refused: %v", err)
	}
	for name, r := range map[string]*http.Request{
		"TRACE": httptest.NewRequest(http.MethodTrace, "http://inventory/stock", nil),
		"host *": func() *http.Request {
			r := httptest.NewRequest("GET", "http://inventory/stock", nil)
			r.Host = "*"
			return r
		}(),
		"host x:1:2": func() *http.Request {
			r := httptest.NewRequest("GET", "http://inventory/stock", nil)
			r.Host = "x:1:2"
			return r
		}(),
	} {
		_, err := EncodeRequest(r, wire.Limits{})
		var e *wire.Error
		if !errors.As(err, &e) || e.Kind != wire.KindBadRequest {
			t.Errorf("encode %s: %v, want bad-request", name, err)
		}
	}
}
