package authz_test

import (
	"errors"
	"testing"

	"github.com/natsmesh/natsmesh/authz"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

const mesh = `version: 1
accounts:
  billing:
    exports:
      - service: invoices
        to: [mesh]
  other: {}
services:
  web: {}
  admin-ui: {}
  lonely:
    account: other
  orders:
    allow:
      - caller: web
        methods: [GET]
        paths: [/public, /api/]
      - caller: admin-ui
        paths: [/admin]
      - caller: bridge
        methods: [POST]
  pay:
    allow:
      - caller: orders
        methods: [pay.Payments/Charge, pay.Refunds/*]
      - caller: web
        paths: [/]
  invoices:
    account: billing
    allow:
      - caller: orders
      - caller: lonely
  open: {}
  closed:
    allow: []
`

func file(t *testing.T, src string) *policies.File {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func httpReq(caller, service, method, path string) authz.Request {
	return authz.Request{Caller: caller, Service: service, Proto: wire.ProtoHTTP, Op: method, Path: path}
}

func TestCheck(t *testing.T) {
	f := file(t, mesh)
	for _, tc := range []struct {
		name string
		r    authz.Request
		want bool
	}{
		{"path rule", httpReq("web", "orders", "GET", "/public"), true},
		{"below a path rule", httpReq("web", "orders", "GET", "/public/a"), true},
		{"segment-wise", httpReq("web", "orders", "GET", "/publicity"), false},
		{"prefix ending in /", httpReq("web", "orders", "GET", "/api/x"), true},
		{"not the prefix ending in /", httpReq("web", "orders", "GET", "/api"), false},
		{"method not listed", httpReq("web", "orders", "POST", "/public"), false},
		{"HEAD is not GET", httpReq("web", "orders", "HEAD", "/public"), false},
		{"another caller's paths", httpReq("web", "orders", "GET", "/admin"), false},
		{"any method on its paths", httpReq("admin-ui", "orders", "DELETE", "/admin/x"), true},
		{"bridge by method", httpReq("bridge", "orders", "POST", "/anything"), true},
		{"bridge other method", httpReq("bridge", "orders", "GET", "/"), false},
		{"caller not listed", httpReq("open", "orders", "GET", "/public"), false},
		{"no allow list, allow all", httpReq("web", "open", "GET", "/"), true},
		{"empty allow list", httpReq("web", "closed", "GET", "/"), false},
		{"undeclared service, allow all", httpReq("web", "nobody", "GET", "/"), true},
		{"undeclared caller, allow all", httpReq("ghost", "open", "GET", "/"), true},
		{"exported", httpReq("orders", "invoices", "POST", "/"), true},
		{"not exported to the account", httpReq("lonely", "invoices", "POST", "/"), false},
		{"other account, no export", httpReq("web", "lonely", "GET", "/"), false},
		{"grpc method", authz.Request{Caller: "orders", Service: "pay", Proto: wire.ProtoGRPC, Op: "/pay.Payments/Charge"}, true},
		{"grpc method, no slash", authz.Request{Caller: "orders", Service: "pay", Proto: wire.ProtoGRPC, Op: "pay.Payments/Charge"}, true},
		{"grpc other method", authz.Request{Caller: "orders", Service: "pay", Proto: wire.ProtoGRPC, Op: "/pay.Payments/Refund"}, false},
		{"grpc service wildcard", authz.Request{Caller: "orders", Service: "pay", Proto: wire.ProtoGRPC, Op: "/pay.Refunds/Full"}, true},
		{"grpc service wildcard is not a prefix", authz.Request{Caller: "orders", Service: "pay", Proto: wire.ProtoGRPC, Op: "/pay.RefundsX/Full"}, false},
		{"http call, grpc rule", httpReq("orders", "pay", "POST", "/pay.Payments/Charge"), false},
		{"path rule admits no grpc", authz.Request{Caller: "web", Service: "pay", Proto: wire.ProtoGRPC, Op: "/pay.Payments/Charge"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := authz.Check(f, tc.r)
			if tc.want && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.want && !errors.Is(err, wire.ErrForbidden) {
				t.Fatalf("got %v, want forbidden", err)
			}
		})
	}
	if err := authz.Check(nil, httpReq("x", "y", "GET", "/")); err != nil {
		t.Errorf("nil file: %v", err)
	}
	deny := file(t, "version: 1\nallow: deny\nservices:\n  a: {}\n  b: {}\n")
	if err := authz.Check(deny, httpReq("a", "b", "GET", "/")); !errors.Is(err, wire.ErrForbidden) {
		t.Errorf("allow: deny, no allow list: %v", err)
	}
}

// TestPathCorpus: every spelling of a path decides exactly as its
// canonical form does, and one with no canonical form matches no path
// rule. web may GET /public only; admin-ui may call /admin.
func TestPathCorpus(t *testing.T) {
	f := file(t, mesh)
	for _, tc := range []struct {
		path, canonical string // canonical "": none
	}{
		{"/admin", "/admin"},
		{"//admin", "/admin"},
		{"///admin//x", "/admin/x"},
		{"/%2Fadmin", "/admin"},
		{"/%2fadmin", "/admin"},
		{"/./admin", "/admin"},
		{"/public/../admin", "/admin"},
		{"/public/%2E%2E/admin", "/admin"},
		{"/public/..%2Fadmin", "/admin"},
		{"/public/..%5Cadmin", "/admin"},
		{"/public\\..\\admin", "/admin"},
		{"/../../admin", "/admin"},
		{"/%61dmin", "/admin"},
		{"/public/", "/public/"},
		{"/public/.", "/public"},
		{"/public//x", "/public/x"},
		{"/%70ublic", "/public"},
		{"/admin%00", ""},
		{"/public%00/../admin", ""},
		{"/public/%252e%252e/admin", ""},
		{"/public%2", ""},
		{"/public%zz", ""},
		{"/public?/../admin", ""},
		{"/public#x", ""},
		{"/public\x00", ""},
		{"/public\r\nx", ""},
		// Path parameters that hide a dot segment (Tomcat, Spring).
		{"/public/..;/admin", ""},
		{"/public/..;x=1/admin", ""},
		{"/public/%2e%2e;x/admin", ""},
		{"/public/..%3b/admin", ""},
		{"/public/.;/admin", ""},
		{"/public/a;v=1", "/public/a;v=1"},
		{"public", ""},
		{"", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			got, err := authz.CanonicalPath(tc.path)
			if tc.canonical == "" {
				if !errors.Is(err, authz.ErrNoCanonicalPath) {
					t.Fatalf("CanonicalPath = %q, %v; want no canonical form", got, err)
				}
			} else if err != nil || got != tc.canonical {
				t.Fatalf("CanonicalPath = %q, %v; want %q", got, err, tc.canonical)
			}
			for _, caller := range []string{"web", "admin-ui"} {
				err := authz.Check(f, httpReq(caller, "orders", "GET", tc.path))
				if tc.canonical == "" {
					if !errors.Is(err, wire.ErrForbidden) {
						t.Errorf("%s: %v, want forbidden (no canonical form)", caller, err)
					}
					continue
				}
				want := authz.Check(f, httpReq(caller, "orders", "GET", tc.canonical))
				if (err == nil) != (want == nil) {
					t.Errorf("%s: %q decides %v, its canonical form %q %v", caller, tc.path, err, tc.canonical, want)
				}
			}
		})
	}
}
