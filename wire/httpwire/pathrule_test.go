package httpwire

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// TestAmbiguousPath (issue 19): a path whose dot segments are spelled with
// escaped slashes, backslashes, escaped dots or double escapes is refused;
// plain dot segments and escapes without dot segments are not.
func TestAmbiguousPath(t *testing.T) {
	for p, want := range map[string]bool{
		`/admin%2F..%2Fstock`:         true,
		`/admin%2f..%2fstock`:         true,
		`/admin%5C..%5Cstock`:         true,
		`/admin%5c..%5cstock`:         true,
		`/admin\..\stock`:             true,
		`/admin%2F.%2Fstock`:          true,
		`/admin/%2e%2e/stock`:         true,
		`/admin/%2E%2E/stock`:         true,
		`/admin/.%2e/stock`:           true,
		`/admin%252F..%252Fstock`:     true,
		`/admin/%252e%252e/stock`:     true,
		`/admin%25252F..%25252Fstock`: true,
		`/admin%2F..;x%2Fstock`:       true,
		`/a\b/../c`:                   true,
		`/stock`:                      false,
		`/admin/../stock`:             false,
		`/a%2Fb`:                      false,
		`/a%5Cb`:                      false,
		`/a\b`:                        false,
		`/a%20b/c`:                    false,
		`/a%2e.txt`:                   false,
		`/..foo%2Fbar`:                false,
		`/a%2F...%2Fb`:                false,
		`/%`:                          false,
	} {
		if got := AmbiguousPath(p); got != want {
			t.Errorf("AmbiguousPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestAmbiguousPathRefused: EncodeRequest (every HTTP entry point) and
// DecodeCall (the inbound agent, whatever sent the message) refuse an
// ambiguous path with bad-request.
func TestAmbiguousPathRefused(t *testing.T) {
	for _, p := range []string{`/admin%2F..%2Fstock`, `/admin%5C..%5Cstock`, `/admin\..\stock`, `/admin/%2e%2e/stock`, `/admin%252F..%252Fstock`} {
		u, err := url.Parse("http://orders" + p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		_, err = EncodeRequest(&http.Request{Method: "GET", URL: u, Header: http.Header{}, Host: "orders"}, wire.Limits{})
		if e := wire.FromError(err); err == nil || e.Kind != wire.KindBadRequest {
			t.Errorf("EncodeRequest %s (escaped %s): %v, want bad-request", p, u.EscapedPath(), err)
		}
		_, err = DecodeCall(t.Context(), nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {p}}, nil, "GET")
		if e := wire.FromError(err); err == nil || e.Kind != wire.KindBadRequest {
			t.Errorf("DecodeCall %s: %v, want bad-request", p, err)
		}
	}
	if _, err := DecodeCall(t.Context(), nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/admin/../stock"}}, nil, "GET"); err != nil {
		t.Errorf("DecodeCall of a plain dot segment: %v", err)
	}
}
