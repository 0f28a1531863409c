package resilience_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// BenchmarkOverhead is the cost the policies add to a call that succeeds
// at once, under the built-in policy (no network: the terminal answers).
func BenchmarkOverhead(b *testing.B) {
	ok := &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}
	s := resilience.New(resilience.Config{})(pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*nats.Msg, error) {
		return ok, nil
	}))
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x",
		Header: nats.Header{wire.HeaderMethod: {"GET"}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}
