package resilience_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

const probeMesh = `version: 1
services:
  orders:
    policy:
      timeout: 5s
      retries: {attempts: 3, backoff: 300ms, budget: 100%}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 1, open_for: 200ms, half_open_probes: 1}
`

type fnSender func(context.Context, *pipeline.Call) (*pipeline.Reply, error)

func (f fnSender) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	return f(ctx, c)
}

var probePost = &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x"}

// hang makes probeSetup's sender wait for its call's end.
var hang atomic.Bool

// probeSetup: answers with noResponders while fail is set, else 200;
// panics while boom is set.
func probeSetup(t *testing.T) (s pipeline.Sender, fail, boom *atomic.Bool, sent *atomic.Int32) {
	f, err := policies.Parse("mesh.yaml", []byte(probeMesh))
	if err != nil {
		t.Fatal(err)
	}
	fail, boom, sent = new(atomic.Bool), new(atomic.Bool), new(atomic.Int32)
	s = resilience.New(resilience.Config{Policies: live.Static(f)})(fnSender(func(ctx context.Context, _ *pipeline.Call) (*pipeline.Reply, error) {
		sent.Add(1)
		if hang.Load() {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if boom.Load() {
			panic("a bug below the resilience middleware")
		}
		if fail.Load() {
			return noResponders()
		}
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
	}))
	// Open the breaker with one failed call (its deadline leaves no room
	// for a retry), then wait past open_for.
	fail.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Send(ctx, probePost); err == nil {
		t.Fatal("want a failure")
	}
	if _, err := s.Send(context.Background(), probePost); !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("setup: %v, want circuit-open", err)
	}
	time.Sleep(250 * time.Millisecond) // past open_for: the next call is the half-open probe
	return s, fail, boom, sent
}

// The half-open probe's only attempt fails (no responders) and its caller
// goes away during the retry's backoff: the call is recorded as a success
// (context.Canceled -> KindTimeout wrapping Canceled -> not
// destinationFailed) and the breaker closes on no evidence.
func TestBreakerProbeCancelledInBackoffCountsItsAttempt(t *testing.T) {
	s, _, _, sent := probeSetup(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // during the 300ms backoff
	_, err := s.Send(ctx, probePost)
	t.Logf("probe call: %v", err)
	before := sent.Load()
	_, err = s.Send(context.Background(), probePost)
	if !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("next call: %v, %d attempts sent: the breaker closed after a probe whose one attempt failed", err, sent.Load()-before)
	}
}

// A probe whose attempt panics (recovered above, as net/http's server
// does for the agent's outbound listener) never returns its permit: the
// breaker stays half-open and refuses every call from then on.
func TestBreakerProbePanicReturnsPermit(t *testing.T) {
	s, fail, boom, _ := probeSetup(t)
	boom.Store(true)
	func() {
		defer func() { _ = recover() }()
		s.Send(context.Background(), probePost)
	}()
	boom.Store(false)
	fail.Store(false)
	// The panicking probe counts as failed: the breaker opens again, and
	// after open_for a probe goes through and closes it.
	meshtest.CheckFor(t, 2*time.Second, 20*time.Millisecond, func() error {
		_, err := s.Send(context.Background(), probePost)
		return err
	})
	for i := range 3 {
		if _, err := s.Send(context.Background(), probePost); err != nil {
			t.Fatalf("call %d, after the breaker closed again: %v", i, err)
		}
	}
}

// A probe whose only attempt is cancelled (its caller goes away while it
// is in flight) is no evidence: it does not close the breaker (it counts
// as failed, failsafe-go having no way to give a permit back), nor wedge
// it half-open: after open_for another probe goes through.
func TestBreakerProbeCancelledInFlight(t *testing.T) {
	s, fail, _, _ := probeSetup(t)
	hang.Store(true)
	defer hang.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := s.Send(ctx, probePost)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("probe call: %v, want cancelled", err)
	}
	hang.Store(false)
	fail.Store(false)
	if _, err := s.Send(context.Background(), probePost); !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("next call: %v: a probe with no evidence closed the breaker", err)
	}
	meshtest.CheckFor(t, 2*time.Second, 20*time.Millisecond, func() error {
		_, err := s.Send(context.Background(), probePost)
		return err
	})
}
