package authz_test

import (
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/authz"
	"github.com/natsmesh/natsmesh/wire"
)

// TestCanonicalPathBoundaries pins the edges of each byte class: the first
// and last hex digit of each range, the last control byte and the first
// printable one (mutation testing found each of them unchecked).
func TestCanonicalPathBoundaries(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means no canonical form
	}{
		{"/a%30", "/a0"},
		{"/a%39", "/a9"},
		{"/a%3a", "/a:"},
		{"/a%3A", "/a:"},
		{"/a%4a", "/aJ"},
		{"/a%4A", "/aJ"},
		{"/a%6f", "/ao"},
		{"/a%6F", "/ao"},
		{"/a%3g", ""},
		{"/a%3G", ""},
		{"/a%3/", ""},
		{"/a%3@", ""},
		{"/a%3`", ""},
		{"/a%20b", "/a b"},
		{"/a%1fb", ""},
		{"/a%7e", "/a~"},
		{"/a%7f", ""},
		{"/a%25", "/a%"},
		{"/a%2541", ""},
		{"/a%254", "/a%4"}, // "%4" at the very end is no escape
		{"/a%25%34", "/a%4"},
	} {
		got, err := authz.CanonicalPath(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("CanonicalPath(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestForbiddenSaysWhat: a refusal names the HTTP call's method and path,
// and a gRPC call's method alone.
func TestForbiddenSaysWhat(t *testing.T) {
	f := file(t, mesh)
	for _, tc := range []struct {
		r         authz.Request
		want, not string
	}{
		{httpReq("web", "orders", "GET", "/admin/x"), "(GET /admin/x)", ""},
		{httpReq("web", "orders", "GET", ""), "(GET)", "(GET )"},
		{httpReq("web", "orders", "GET", "/public/%zz"), "matches no path rule", "admits no such call"},
		{httpReq("web", "orders", "GET", "/private"), "admits no such call", "matches no path rule"},
		{authz.Request{Caller: "orders", Service: "pay", Proto: wire.ProtoGRPC, Op: "/pay.Other/Do", Path: "/x"}, "(/pay.Other/Do)", "/x)"},
	} {
		err := authz.Check(f, tc.r)
		if err == nil {
			t.Fatalf("Check(%+v) allowed it", tc.r)
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || tc.not != "" && strings.Contains(msg, tc.not) {
			t.Errorf("Check(%+v) = %q, want it to hold %q (and not %q)", tc.r, msg, tc.want, tc.not)
		}
	}
}
