package chain

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

const mesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
        methods: [GET]
        paths: [/public]
`

func options(t *testing.T) Options {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(mesh))
	if err != nil {
		t.Fatal(err)
	}
	return Options{Service: "orders", Policies: live.Static(f)}
}

// TestInboundAuthzRequests: the inbound decision reads the request the
// local service will read: the caller from the subject, the canonical
// path, whatever the Host's case, and refuses a request whose method or
// path header is repeated.
func TestInboundAuthzRequests(t *testing.T) {
	mws := inboundAuthz(options(t))
	if len(mws) != 1 {
		t.Fatalf("%d middleware", len(mws))
	}
	h := mws[0](pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{}), nil
	}))
	call := func(caller string, hdr nats.Header) *pipeline.Call {
		return &pipeline.Call{Service: "orders", Caller: caller, Proto: wire.ProtoHTTP, Op: "GET", Path: hdr.Get(wire.HeaderPath), Header: hdr}
	}
	for _, tc := range []struct {
		name   string
		caller string
		hdr    nats.Header
		want   error // nil: allowed
	}{
		{"canonical", "web", nats.Header{wire.HeaderPath: {"/public/a"}}, nil},
		{"mixed-case Host", "web", nats.Header{wire.HeaderPath: {"/public/a"}, wire.HeaderHost: {"ORDERS.Mesh"}}, nil},
		{"Host naming another service", "web", nats.Header{wire.HeaderPath: {"/public/a"}, wire.HeaderHost: {"pay"}}, nil},
		{"outside the paths", "web", nats.Header{wire.HeaderPath: {"/admin"}}, wire.ErrForbidden},
		{"mixed-case Host outside", "web", nats.Header{wire.HeaderPath: {"/admin"}, wire.HeaderHost: {"Orders"}}, wire.ErrForbidden},
		{"dot segments", "web", nats.Header{wire.HeaderPath: {"/public/../admin"}}, wire.ErrForbidden},
		{"repeated path", "web", nats.Header{wire.HeaderPath: {"/public", "/admin"}}, wire.ErrBadRequest},
		{"repeated method", "web", nats.Header{wire.HeaderPath: {"/public"}, wire.HeaderMethod: {"GET", "DELETE"}}, wire.ErrBadRequest},
		{"repeated ordinary header", "web", nats.Header{wire.HeaderPath: {"/public"}, "Mesh-Hdr-X": {"1", "2"}}, nil},
		{"caller header is no identity", "pay", nats.Header{wire.HeaderPath: {"/public"}, "Mesh-Hdr-Mesh-Caller": {"web"}}, wire.ErrForbidden},
		{"no path reads as /", "web", nats.Header{}, wire.ErrForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.ServeCall(context.Background(), call(tc.caller, tc.hdr))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestOutboundAuthz: the caller's side decides on the parsed call, so a
// Host in any case names the same service; NATS-native subjects pass.
func TestOutboundAuthz(t *testing.T) {
	o := options(t)
	o.Service = "web"
	s := outboundAuthz(o)[0](pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{}), nil
	}))
	for _, tc := range []struct {
		host, method, path string
		allowed            bool
	}{
		{"orders", "GET", "/public", true},
		{"ORDERS.mesh", "GET", "/public", true},
		{"Orders", "GET", "//admin", false},
		{"orders", "POST", "/public", false},
	} {
		r, _ := http.NewRequest(tc.method, "http://"+tc.host+tc.path, nil)
		r.Host = tc.host
		svc, subset, err := wire.ParseHost(r.Host, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := meshhttp.NewCall(r, pipeline.Call{Service: svc, Subset: subset, Caller: "web"}, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Send(context.Background(), c)
		if tc.allowed != (err == nil) || !tc.allowed && !errors.Is(err, wire.ErrForbidden) {
			t.Errorf("%s %s%s: %v", tc.method, tc.host, tc.path, err)
		}
	}
	if _, err := s.Send(context.Background(), &pipeline.Call{Subject: "demo.clock", Caller: "web"}); err != nil {
		t.Errorf("NATS-native subject: %v", err)
	}
}

// TestFailClosed: with FailClosed and no mesh file yet, every call is
// refused no-mesh-file on both sides (a NATS-native one too); without
// FailClosed the same calls pass with the built-in policy; and once the
// source holds a file the allow lists decide.
func TestFailClosed(t *testing.T) {
	ok := func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { return &pipeline.Reply{}, nil }
	mesh := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET", Path: "/public", Header: nats.Header{}}
	native := &pipeline.Call{Subject: "svc.time", Caller: "web"}
	for _, tc := range []struct {
		name   string
		closed bool
		src    *live.Source
		want   error
	}{
		{"fail closed, no file", true, live.Static(nil), wire.ErrNoMeshFile},
		{"open, no file", false, live.Static(nil), nil},
		{"fail closed, a file", true, options(t).Policies, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Service: "web", Policies: tc.src, FailClosed: tc.closed}
			out := outboundAuthz(o)[0](pipeline.SendFunc(ok))
			for _, c := range []*pipeline.Call{mesh, native} {
				if _, err := out.Send(context.Background(), c); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("outbound %q: %v, want %v", c.Subject, err, tc.want)
				}
			}
			o.Service = "orders"
			in := inboundAuthz(o)[0](pipeline.HandlerFunc(ok))
			if _, err := in.ServeCall(context.Background(), mesh); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("inbound: %v, want %v", err, tc.want)
			}
		})
	}
}
