package httpwire

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

func TestWriteHTTPError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		kind       string
		retryAfter string
	}{
		{"no route", wire.ErrNoRoute, 404, "no-route", ""},
		{"overloaded", &wire.Error{Kind: wire.KindOverloaded, RetryAfter: 200 * time.Millisecond}, 503, "overloaded", "1"},
		{"rate limited", &wire.Error{Kind: wire.KindRateLimited, RetryAfter: 3 * time.Second}, 429, "rate-limited", "3"},
		{"nats no responders", nats.ErrNoResponders, 503, "no-responders", ""},
		{"plain error", errors.New("boom"), 500, "internal", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, tt.err)
			if w.Code != tt.status || w.Header().Get(wire.HeaderError) != tt.kind || w.Header().Get(wire.HeaderRetryAfter) != tt.retryAfter {
				t.Fatalf("got %d %q Retry-After %q, want %d %q %q", w.Code, w.Header().Get(wire.HeaderError), w.Header().Get(wire.HeaderRetryAfter), tt.status, tt.kind, tt.retryAfter)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}
