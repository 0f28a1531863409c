package chain

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// BenchmarkOutbound is the cost of the mesh's outbound middleware (no
// telemetry) for a call that succeeds at once, with a live mesh file: the
// terminal answers, so only the middleware is measured.
//
//   - no-route: the callee has an allow list with a path rule but no
//     routes, so routing adds nothing;
//   - route: the call matches a route (no split, no mirror).
func BenchmarkOutbound(b *testing.B) {
	const mesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
        paths: [/items]
  pay:
    allow:
      - caller: web
    routes:
      - name: items
        match: {path_prefix: /items}
        policy: {timeout: 5s}
`
	f, err := policies.Parse("mesh.yaml", []byte(mesh))
	if err != nil {
		b.Fatal(err)
	}
	ok := pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}})
	var s pipeline.Sender = pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { return ok, nil })
	mws := Outbound(Options{Service: "web", Policies: live.Static(f)})
	for i := len(mws) - 1; i >= 0; i-- {
		s = mws[i](s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pipeline.DefaultTimeout)
	defer cancel()
	for _, service := range []string{"orders", "pay"} {
		name := map[string]string{"orders": "no-route", "pay": "route"}[service]
		c := &pipeline.Call{Service: service, Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/items/1",
			Header: nats.Header{wire.HeaderMethod: {"POST"}, wire.HeaderPath: {"/items/1"}}}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Send(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
