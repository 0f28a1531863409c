package pipeline

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/adaptivelimit"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestStreamsLeaveTheAdaptiveLimit: under the adaptive limit (here
// pinned to 4), a streamed answer holds its call's place only until its
// head. Long-lived streams (server-sent events, watches), more of them
// than the limit, neither refuse each other nor the unary calls that
// come after them; a stream that held its place for its whole life
// would, the fifth one already.
func TestStreamsLeaveTheAdaptiveLimit(t *testing.T) {
	b := meshtest.BareBroker(t)
	in := serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		adaptive: adaptivelimit.Config{Max: 4, Initial: 4},
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			if c.Op == http.MethodGet {
				return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}}, nil
			}
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, ticker()), nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	const streams = 12
	for i := range streams {
		reply, err := o.Send(context.Background(), streamCall(t, nil))
		if err != nil {
			t.Fatalf("stream %d of %d: %v", i+1, streams, err)
		}
		if _, err := reply.Body.Stream.Next(context.Background()); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
		t.Cleanup(func() { reply.Body.Stream.Close() })
	}
	for i := range 20 {
		reply, err := o.Send(context.Background(), httpCall(t, "orders", http.MethodGet))
		if err != nil || reply.Status != 200 {
			t.Fatalf("unary call %d beside %d streams: %v %v", i+1, streams, reply, err)
		}
	}
	if n := in.Refused(); n > 0 {
		t.Errorf("%d calls refused at the limit", n)
	}
}

// TestFixedBoundReplacesTheAdaptiveLimit: MaxConcurrent set, the limit is
// that bound, as the metrics show it, and calls past it are refused with
// Retry-After.
func TestFixedBoundReplacesTheAdaptiveLimit(t *testing.T) {
	b := meshtest.BareBroker(t)
	for _, tc := range []struct {
		max, limit int
	}{{0, DefaultMaxConcurrent}, {7, 7}, {-1, 0}} {
		in, err := NewInbound(meshtest.ServiceConn(t, b, "orders"), InboundConfig{MaxConcurrent: tc.max,
			Handler: HandlerFunc(func(context.Context, *Call) (*Reply, error) { return nil, errors.New("unused") })})
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Limit(); got != tc.limit {
			t.Errorf("MaxConcurrent %d: Limit() = %d, want %d", tc.max, got, tc.limit)
		}
	}
}
