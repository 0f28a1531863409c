package resilience

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// reply is a reply to a call of no protocol known: read by its own status
// header.
func reply(h, v string) *pipeline.Reply {
	return pipeline.ReplyFromMsg("", &nats.Msg{Header: nats.Header{h: {v}}})
}

func TestClassify(t *testing.T) {
	pl := &plan{dest: "orders", maxConcurrent: 4}
	for _, tc := range []struct {
		name          string
		msg           *pipeline.Reply
		err           error
		once, idem    bool // retried for a non-idempotent / an idempotent call
		failsBreaker  bool
		endsHedgedRun bool
	}{
		{"200", reply(wire.HeaderStatus, "200"), nil, false, false, false, true},
		{"404", reply(wire.HeaderStatus, "404"), nil, false, false, false, true},
		{"500", reply(wire.HeaderStatus, "500"), nil, false, true, true, false},
		{"503", reply(wire.HeaderStatus, "503"), nil, false, true, true, false},
		{"504", reply(wire.HeaderStatus, "504"), nil, false, true, true, false},
		{"501: every instance would say it", reply(wire.HeaderStatus, "501"), nil, false, false, false, true},
		{"micro error 500", reply("Nats-Service-Error-Code", "500"), nil, false, true, true, false},
		{"micro error 404", reply("Nats-Service-Error-Code", "404"), nil, false, false, false, true},
		{"grpc ok", reply(grpcwire.HeaderGRPCStatus, "0"), nil, false, false, false, true},
		{"grpc not found", reply(grpcwire.HeaderGRPCStatus, "5"), nil, false, false, false, true},
		{"grpc unavailable", reply(grpcwire.HeaderGRPCStatus, "14"), nil, false, true, true, false},
		{"grpc internal", reply(grpcwire.HeaderGRPCStatus, "13"), nil, false, false, true, false},
		{"grpc deadline exceeded", reply(grpcwire.HeaderGRPCStatus, "4"), nil, false, false, true, false},
		{"grpc unimplemented", reply(grpcwire.HeaderGRPCStatus, "12"), nil, false, false, false, true},
		{"no-responders", nil, wire.ErrNoResponders, true, true, true, false},
		{"overloaded", nil, &wire.Error{Kind: wire.KindOverloaded}, true, true, false, false},
		{"upstream-refused", nil, &wire.Error{Kind: wire.KindUpstreamRefused}, true, true, true, false},
		{"broker-unavailable", nil, &wire.Error{Kind: wire.KindBrokerUnavailable}, true, true, false, false},
		{"timeout", nil, &wire.Error{Kind: wire.KindTimeout}, false, true, true, false},
		{"deadline", nil, context.DeadlineExceeded, false, true, true, false},
		{"upstream-unavailable", nil, &wire.Error{Kind: wire.KindUpstream}, false, true, true, false},
		{"cancelled", nil, wire.FromError(context.Canceled), false, false, false, false},
		{"forbidden", nil, wire.ErrForbidden, false, false, false, false},
		{"bad-request", nil, wire.ErrBadRequest, false, false, false, false},
		{"too-large", nil, wire.ErrTooLarge, false, false, false, false},
		{"remote circuit-open", nil, wire.ErrCircuitOpen, false, false, false, false},
		{"own breaker", nil, pl.refusal(circuitbreaker.ErrOpen), false, false, false, false},
		{"own bulkhead", nil, pl.refusal(bulkhead.ErrFull), false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.msg, tc.err, false); got != tc.once {
				t.Errorf("retried when not idempotent: %v, want %v", got, tc.once)
			}
			if got := retryable(tc.msg, tc.err, true); got != tc.idem {
				t.Errorf("retried when idempotent: %v, want %v", got, tc.idem)
			}
			if got := destinationFailed(tc.msg, tc.err); got != tc.failsBreaker {
				t.Errorf("counts against the breaker: %v, want %v", got, tc.failsBreaker)
			}
			if got := hedgeWins(tc.msg, tc.err); got != tc.endsHedgedRun {
				t.Errorf("wins a hedged call: %v, want %v", got, tc.endsHedgedRun)
			}
		})
	}
}

func TestRefusalKinds(t *testing.T) {
	pl := &plan{dest: "orders@v2", maxConcurrent: 4}
	if err := pl.refusal(circuitbreaker.ErrOpen); !wireIs(err, wire.ErrCircuitOpen) {
		t.Errorf("open breaker: %v", err)
	}
	if err := pl.refusal(bulkhead.ErrFull); !wireIs(err, wire.ErrOverloaded) {
		t.Errorf("full bulkhead: %v", err)
	}
}

func wireIs(err error, target *wire.Error) bool {
	e, ok := err.(*wire.Error)
	return ok && e.Is(target)
}

func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		floor int
		calls int
		want  int
	}{
		{0.2, 0, 100, 20},
		{0.2, 5, 100, 25},
		{0, 3, 100, 3},
		{0.5, 0, 10, 5},
	} {
		t.Run(fmt.Sprint(tc.ratio, tc.floor, tc.calls), func(t *testing.T) {
			b := newRetryBudget(tc.ratio, tc.floor)
			for range tc.calls {
				b.recordCall()
			}
			got := 0
			for b.tryRetry() {
				if got++; got > 1000 {
					break
				}
			}
			// The window slides by the second: a test that crossed one may
			// see a floor refilled.
			if got != tc.want && got != tc.want+tc.floor {
				t.Errorf("%d retries allowed, want %d", got, tc.want)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	pl := &plan{backoff: 25 * time.Millisecond, maxBackoff: 250 * time.Millisecond}
	for attempts, want := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 50 * time.Millisecond, 4: 200 * time.Millisecond, 5: 250 * time.Millisecond, 9: 250 * time.Millisecond} {
		if got := pl.delay(attempts); got != want {
			t.Errorf("delay after %d tries: %v, want %v", attempts, got, want)
		}
	}
}
