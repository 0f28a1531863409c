package resilience_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
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

// sender builds the middleware of the mesh file src around next.
func sender(t *testing.T, src string, next pipeline.Sender) pipeline.Sender {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return resilience.New(resilience.Config{Policies: live.Static(f)})(next)
}

func getCall() *pipeline.Call {
	return &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x"}
}

// silent never answers: its attempts end with their context.
var silent = pipeline.SendFunc(func(ctx context.Context, _ *pipeline.Call) (*pipeline.Reply, error) {
	<-ctx.Done()
	return nil, ctx.Err()
})

// TestRouteTimeout: the policy's timeout ends a call sooner than the
// caller's deadline.
func TestRouteTimeout(t *testing.T) {
	s := sender(t, "version: 1\nservices:\n  orders:\n    policy: {timeout: 200ms, retries: {attempts: 1}}\n", silent)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Send(ctx, getCall()); !errors.Is(err, wire.ErrTimeout) || ctx.Err() != nil {
		t.Errorf("timeout 200ms under a 5 s deadline: %v (caller's context: %v), want a timeout before the deadline", err, ctx.Err())
	}
}

// TestRetriedStreamedAnswer: the streamed reply of a retry that answers
// the call is the caller's to read, not closed by the policy.
func TestRetriedStreamedAnswer(t *testing.T) {
	body := &chunks{parts: []string{"x", "y"}}
	r := &recorder{answers: []func() (*pipeline.Reply, error){replyStatus("503"), func() (*pipeline.Reply, error) {
		return pipeline.NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, body), nil
	}}}
	s := sender(t, "version: 1\nservices:\n  orders:\n    policy: {retries: {attempts: 2, backoff: 1ms, budget: 100%}}\n", r)
	reply, err := s.Send(context.Background(), getCall())
	if err != nil || !reply.Streamed() {
		t.Fatalf("reply %v, err %v; want the retry's streamed reply", reply, err)
	}
	if body.isClosed() {
		t.Fatal("the answer's stream was closed before its caller read it")
	}
	drain(t, reply.Body.Stream)
}

// TestBreakerCountsTheLastAnswer: a call cancelled during a retry's
// backoff counts on the breaker by its last answered attempt (a 503); the
// open breaker's refusal says when it probes again.
func TestBreakerCountsTheLastAnswer(t *testing.T) {
	s := sender(t, `version: 1
services:
  orders:
    policy:
      retries: {attempts: 2, backoff: 5s, max_backoff: 5s, jitter: 0%, budget: 100%}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 1, open_for: 1h, half_open_probes: 1}
`, &recorder{answers: []func() (*pipeline.Reply, error){replyStatus("503")}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := s.Send(ctx, getCall()); err == nil {
		t.Fatal("a call cancelled during its backoff answered")
	}
	_, err := s.Send(context.Background(), getCall())
	if !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("after a cancelled call whose attempt got 503: %v, want circuit-open", err)
	}
	if !strings.Contains(err.Error(), "(probing again in 1h") && !strings.Contains(err.Error(), "(probing again in 59m") {
		t.Errorf("circuit-open says %q, want when it probes again", err)
	}
}

// TestHedgeReplaysTheBody: the first attempt of a hedged call sends the
// call's own body; each hedge a replay of it, closed once the hedge has
// ended; the call's own stream is its maker's to close.
func TestHedgeReplaysTheBody(t *testing.T) {
	own := &chunks{parts: []string{"body"}}
	var mu sync.Mutex
	var replays []*chunks
	var sent []pipeline.Stream
	c := getCall()
	c.Body = pipeline.Body{Stream: own, Replay: func() (pipeline.Stream, error) {
		r := &chunks{parts: []string{"body"}}
		mu.Lock()
		replays = append(replays, r)
		mu.Unlock()
		return r, nil
	}}
	next := pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		mu.Lock()
		sent = append(sent, c.Body.Stream)
		mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	s := sender(t, "version: 1\nservices:\n  orders:\n    policy: {timeout: 300ms, idempotent: true, retries: {attempts: 1}, hedge: {delay: 1ms}}\n", next)
	if _, err := s.Send(context.Background(), c); err == nil {
		t.Fatal("a silent destination answered")
	}
	meshtest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(sent) < 2 || len(replays) < 1 || !replays[0].isClosed() {
			return errors.New("the hedge's replay was not closed")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(replays) != 1 {
		t.Errorf("%d replays, want 1 (the hedge's)", len(replays))
	}
	if sent[0] != own && sent[1] != own {
		t.Error("no attempt sent the call's own body")
	}
	if own.isClosed() {
		t.Error("the call's own stream was closed by the hedge policy")
	}
}

// TestLateHedgeLoserClosed: a streamed reply that loses the hedge, coming
// after the call has its answer, is closed.
func TestLateHedgeLoserClosed(t *testing.T) {
	first := &chunks{parts: []string{"late"}}
	second := &chunks{parts: []string{"fast"}}
	var n atomic.Int32
	next := pipeline.SendFunc(func(ctx context.Context, _ *pipeline.Call) (*pipeline.Reply, error) {
		if n.Add(1) == 1 {
			<-ctx.Done() // cancelled as the hedge wins; its reply was on its way
			return pipeline.NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, first), nil
		}
		return pipeline.NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, second), nil
	})
	s := sender(t, "version: 1\nservices:\n  orders:\n    policy: {idempotent: true, retries: {attempts: 1}, hedge: {delay: 1ms}}\n", next)
	reply, err := s.Send(context.Background(), getCall())
	if err != nil {
		t.Fatal(err)
	}
	meshtest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if !first.isClosed() {
			return errors.New("the losing stream is still open")
		}
		return nil
	})
	if second.isClosed() {
		t.Error("the answer's stream was closed")
	}
	drain(t, reply.Body.Stream)
}
