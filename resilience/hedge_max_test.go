package resilience_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// TestHedgeMax: a hedge policy sends one hedge by default and max hedges
// when it says, to a destination that never answers; none before its
// delay, or by percentile before the destination's latencies are known.
func TestHedgeMax(t *testing.T) {
	for _, tc := range []struct {
		hedge  string
		answer time.Duration // 0: never
		want   int32         // attempts
	}{
		{"{delay: 1ms}", 0, 2},
		{"{delay: 1ms, max: 2}", 0, 3},
		{"{delay: 1ms, max: 3}", 0, 4},
		{"{delay: 10s, max: 3}", 50 * time.Millisecond, 1},
		{"{percentile: 50}", 0, 1},
	} {
		var attempts atomic.Int32
		next := pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			attempts.Add(1)
			if tc.answer > 0 {
				select {
				case <-time.After(tc.answer):
					return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
				case <-ctx.Done():
				}
			}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		s := sender(t, "version: 1\nservices:\n  orders:\n    policy: {timeout: 300ms, idempotent: true, retries: {attempts: 1}, hedge: "+tc.hedge+"}\n", next)
		_, err := s.Send(context.Background(), getCall())
		if (err == nil) != (tc.answer > 0) {
			t.Fatalf("hedge %s: %v", tc.hedge, err)
		}
		if got := attempts.Load(); got != tc.want {
			t.Errorf("hedge %s: %d attempts, want %d", tc.hedge, got, tc.want)
		}
	}
}
