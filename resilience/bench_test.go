package resilience_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// BenchmarkOverhead is the cost the policies add to a call that succeeds
// at once (no network: the terminal answers), with allocations per call:
//
//   - builtin: the built-in policy (3 attempts, a breaker, a 30s
//     timeout), the call's deadline set as pipeline.Outbound sets it, the
//     common case;
//   - builtin-no-deadline: the same, from a context without a deadline,
//     so the route's timeout needs a context of its own;
//   - mesh-file: a live mesh file whose route has a bulkhead, an attempt
//     timeout and retries (no hedge).
func BenchmarkOverhead(b *testing.B) {
	ok := pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}})
	terminal := pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		return ok, nil
	})
	call := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x",
		Header: nats.Header{wire.HeaderMethod: {"GET"}}}
	withDeadline := func(ctx context.Context) context.Context {
		ctx, cancel := context.WithTimeout(ctx, pipeline.DefaultTimeout)
		b.Cleanup(cancel)
		return ctx
	}
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  orders:
    routes:
      - name: items
        match: {path_prefix: /x}
        policy:
          attempt_timeout: 5s
          retries: {attempts: 2}
          bulkhead: {max_concurrent: 100}
`))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		cfg  resilience.Config
		ctx  context.Context
	}{
		{"builtin", resilience.Config{}, withDeadline(context.Background())},
		{"builtin-no-deadline", resilience.Config{}, context.Background()},
		{"mesh-file", resilience.Config{Policies: live.Static(f)}, pipeline.WithRoute(withDeadline(context.Background()), "items")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := resilience.New(bc.cfg)(terminal)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Send(bc.ctx, call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBreakerList is the cost of listing the breakers in use (what a
// scrape of /metrics pays), with 1000 destinations under a mesh file.
func BenchmarkBreakerList(b *testing.B) {
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders:\n    routes:\n      - name: reads\n        match: {methods: [GET]}\n"))
	if err != nil {
		b.Fatal(err)
	}
	obs := &observer{}
	s := resilience.New(resilience.Config{Policies: live.Static(f), Observer: obs})(&recorder{answers: []func() (*pipeline.Reply, error){replyStatus("200")}})
	for i := range 1000 {
		c := &pipeline.Call{Service: fmt.Sprintf("s%d", i%100), Subset: fmt.Sprintf("v%d", i/100), Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x"}
		if _, err := s.Send(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if n := len(obs.list()); n != 1000 {
			b.Fatalf("%d breakers", n)
		}
	}
}
