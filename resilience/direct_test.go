package resilience_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// recorder is a terminal that answers attempt i (from 0) with
// answers[min(i, len-1)] and records each attempt's call and number.
type recorder struct {
	answers []func() (*pipeline.Reply, error)

	mu       sync.Mutex
	calls    []*pipeline.Call
	attempts []pipeline.Attempt
}

func (r *recorder) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	r.mu.Lock()
	i := len(r.calls)
	r.calls = append(r.calls, c)
	a, _ := pipeline.AttemptFrom(ctx)
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
	return r.answers[min(i, len(r.answers)-1)]()
}

func replyStatus(s string) func() (*pipeline.Reply, error) {
	return func() (*pipeline.Reply, error) {
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {s}}}), nil
	}
}

func noResponders() (*pipeline.Reply, error) {
	return nil, &wire.Error{Kind: wire.KindNoResponders, Message: "no instance"}
}

// TestFirstTryOutsideTheExecutor: a call that is not hedged makes its
// first try directly and enters the retry policy only to retry; the
// attempts, their numbers, the retries counted and the outcome are those
// of the retry policy run from the start, under the built-in policy.
func TestFirstTryOutsideTheExecutor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		answers  []func() (*pipeline.Reply, error)
		attempts int
		wantKind wire.Kind // "": a reply
		status   string
	}{
		{"success", http.MethodPost, []func() (*pipeline.Reply, error){replyStatus("200")}, 1, "", "200"},
		{"nothing ran, then success", http.MethodPost, []func() (*pipeline.Reply, error){noResponders, replyStatus("200")}, 2, "", "200"},
		{"nothing ran every time", http.MethodPost, []func() (*pipeline.Reply, error){noResponders}, 3, wire.KindNoResponders, ""},
		{"5xx not idempotent", http.MethodPost, []func() (*pipeline.Reply, error){replyStatus("503")}, 1, "", "503"},
		{"5xx idempotent, then success", http.MethodGet, []func() (*pipeline.Reply, error){replyStatus("503"), replyStatus("200")}, 2, "", "200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{answers: tc.answers}
			s := resilience.New(resilience.Config{})(r)
			c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: tc.method, Path: "/x",
				Header: nats.Header{wire.HeaderMethod: {tc.method}}}
			msg, err := s.Send(context.Background(), c)
			if tc.wantKind != "" {
				var e *wire.Error
				if !errors.As(err, &e) || e.Kind != tc.wantKind {
					t.Fatalf("err %v, want %s", err, tc.wantKind)
				}
			} else if err != nil || msg.Header.Get(wire.HeaderStatus) != tc.status {
				t.Fatalf("reply %v, err %v; want status %s", msg, err, tc.status)
			}
			if len(r.calls) != tc.attempts || len(r.attempts) != tc.attempts {
				t.Fatalf("%d attempts sent, %d numbered; want %d", len(r.calls), len(r.attempts), tc.attempts)
			}
			for i, a := range r.attempts {
				if a != (pipeline.Attempt{Number: i + 1}) {
					t.Errorf("attempt %d numbered %+v", i+1, a)
				}
				// The first attempt sends the call itself; a retry its
				// own copy.
				if (r.calls[i] == c) != (i == 0) {
					t.Errorf("attempt %d: sent the caller's call: %v", i+1, r.calls[i] == c)
				}
			}
		})
	}
}

// TestFirstTryBreaker: the first try outside the executor feeds the
// destination's breaker as its executor would: failures open it, and an
// open breaker answers circuit-open without sending.
func TestFirstTryBreaker(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  orders:
    policy:
      retries: {attempts: 1}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 4, open_for: 1h, half_open_probes: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{answers: []func() (*pipeline.Reply, error){replyStatus("500")}}
	s := resilience.New(resilience.Config{Policies: live.Static(f)})(r)
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x"}
	for range 4 {
		if _, err := s.Send(context.Background(), c); err != nil {
			t.Fatalf("before the breaker opens: %v", err)
		}
	}
	_, err = s.Send(context.Background(), c)
	if !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("err %v, want circuit-open", err)
	}
	if len(r.calls) != 4 {
		t.Fatalf("%d attempts sent, want 4", len(r.calls))
	}
}

// TestFirstTryContextEnded: a call whose context ends during its first
// try is over (as under failsafe-go's retry policy): it is not retried,
// and fails with the context's end.
func TestFirstTryContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{answers: []func() (*pipeline.Reply, error){func() (*pipeline.Reply, error) {
		cancel()
		return noResponders()
	}}}
	s := resilience.New(resilience.Config{})(r)
	_, err := s.Send(ctx, &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x"})
	if err == nil || len(r.calls) != 1 {
		t.Fatalf("err %v after %d attempts; want a failure after 1", err, len(r.calls))
	}
}

// TestBreakerCountsCalls: the breaker counts calls after their retries,
// not attempts. A destination that fails every other attempt (one of two
// instances failing) answers every idempotent call on its retry and never
// opens the breaker; one that fails every attempt opens it after
// min_requests calls, however many attempts each made.
func TestBreakerCountsCalls(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  orders:
    policy:
      retries: {attempts: 3, backoff: 1ms, budget: 100%}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 4, open_for: 1h, half_open_probes: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	get := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x",
		Header: nats.Header{wire.HeaderMethod: {http.MethodGet}}}

	var n int
	var mu sync.Mutex
	alternate := func() (*pipeline.Reply, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%2 == 1 {
			return replyStatus("500")()
		}
		return replyStatus("200")()
	}
	s := resilience.New(resilience.Config{Policies: live.Static(f)})(&recorder{answers: []func() (*pipeline.Reply, error){alternate}})
	for i := range 20 {
		msg, err := s.Send(context.Background(), get)
		if err != nil || msg.Header.Get(wire.HeaderStatus) != "200" {
			t.Fatalf("call %d: %v %v; want every call answered on its retry", i, msg, err)
		}
	}

	r := &recorder{answers: []func() (*pipeline.Reply, error){replyStatus("500")}}
	s = resilience.New(resilience.Config{Policies: live.Static(f)})(r)
	for i := range 4 {
		if _, err := s.Send(context.Background(), get); err != nil {
			t.Fatalf("call %d, before the breaker opens: %v", i, err)
		}
	}
	if len(r.calls) != 12 {
		t.Fatalf("%d attempts for 4 calls, want 12", len(r.calls))
	}
	if _, err := s.Send(context.Background(), get); !errors.Is(err, wire.ErrCircuitOpen) {
		t.Fatalf("err %v after 4 failed calls, want circuit-open", err)
	}
}
