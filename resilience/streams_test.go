package resilience_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// chunks is a Stream of its pieces, then trailer.
type chunks struct {
	mu      sync.Mutex
	parts   []string
	trailer nats.Header
	closed  bool
}

func (s *chunks) Next(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.parts) == 0 {
		return nil, io.EOF
	}
	p := s.parts[0]
	s.parts = s.parts[1:]
	return []byte(p), nil
}

func (s *chunks) Trailer() nats.Header { return s.trailer }

func (s *chunks) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *chunks) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// drain reads s to its end.
func drain(t *testing.T, s pipeline.Stream) {
	t.Helper()
	for {
		_, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestNonReplayableBodyIsNeverRetried: a call whose body is a stream that
// cannot be replayed is sent once, though its failure would be retried
// (nothing ran) and its route hedges; a replayable one is retried, each
// retry with a stream of its own from Body.Replay, closed once its attempt
// has ended.
func TestNonReplayableBodyIsNeverRetried(t *testing.T) {
	post := func(body pipeline.Body) *pipeline.Call {
		return &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x",
			Header: nats.Header{wire.HeaderMethod: {http.MethodPost}}, Body: body}
	}

	// The built-in policy: 3 attempts, no-responders always retried.
	r := &recorder{answers: []func() (*pipeline.Reply, error){noResponders}}
	s := resilience.New(resilience.Config{})(r)
	if _, err := s.Send(context.Background(), post(pipeline.Body{Stream: &chunks{parts: []string{"a"}}})); !errors.Is(err, wire.ErrNoResponders) {
		t.Fatalf("err %v, want no-responders", err)
	}
	if len(r.calls) != 1 {
		t.Fatalf("a body that cannot be replayed was sent %d times, want once", len(r.calls))
	}

	r = &recorder{answers: []func() (*pipeline.Reply, error){noResponders}}
	s = resilience.New(resilience.Config{})(r)
	first := &chunks{parts: []string{"a"}}
	var replays []*chunks
	body := pipeline.Body{Stream: first, Replay: func() (pipeline.Stream, error) {
		c := &chunks{parts: []string{"a"}}
		replays = append(replays, c)
		return c, nil
	}}
	if _, err := s.Send(context.Background(), post(body)); !errors.Is(err, wire.ErrNoResponders) {
		t.Fatalf("err %v, want no-responders", err)
	}
	if len(r.calls) != 3 || len(replays) != 2 {
		t.Fatalf("a replayable body: %d attempts, %d replays; want 3 and 2", len(r.calls), len(replays))
	}
	if r.calls[0].Body.Stream != first || r.calls[1].Body.Stream != replays[0] || r.calls[2].Body.Stream != replays[1] {
		t.Error("the attempts did not read the call's stream, then one replay each")
	}
	if first.isClosed() || !replays[0].isClosed() || !replays[1].isClosed() {
		t.Errorf("closed: the call's own %v (its maker's to close), the replays %v, %v (the policy's)",
			first.isClosed(), replays[0].isClosed(), replays[1].isClosed())
	}

	// A hedged route: an idempotent call whose first attempt is slow gets
	// a hedge, unless its body cannot be replayed.
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  orders:
    policy:
      idempotent: true
      retries: {attempts: 3}
      hedge: {delay: 1ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	slow := func() (*pipeline.Reply, error) {
		time.Sleep(50 * time.Millisecond)
		return replyStatus("503")()
	}
	r = &recorder{answers: []func() (*pipeline.Reply, error){slow}}
	s = resilience.New(resilience.Config{Policies: live.Static(f)})(r)
	reply, err := s.Send(context.Background(), post(pipeline.Body{Stream: &chunks{parts: []string{"a"}}}))
	if err != nil || reply.Status != 503 {
		t.Fatalf("reply %v, err %v; want the one attempt's 503", reply, err)
	}
	if len(r.calls) != 1 {
		t.Fatalf("a body that cannot be replayed, on a hedged and retried route: %d attempts, want 1", len(r.calls))
	}
}

// TestStreamedReplyCommits: a streamed reply is the call's answer, never
// retried (though an HTTP 503 to an idempotent call would be), and the
// breaker records the call when the stream ends, by the outcome its end
// makes: a gRPC stream's status is in its trailer.
func TestStreamedReplyCommits(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  orders:
    policy:
      idempotent: true
      retries: {attempts: 3, backoff: 1ms, budget: 100%}
      circuit_breaker: {failure_ratio: 100%, window: 10s, min_requests: 1, open_for: 1h, half_open_probes: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		proto  wire.Proto
		header nats.Header
		trail  nats.Header
	}{
		{"HTTP 503", wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"503"}}, nil},
		{"gRPC ending UNAVAILABLE", wire.ProtoGRPC, nats.Header{"content-type": {"application/grpc"}}, nats.Header{grpcwire.HeaderGRPCStatus: {"14"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			streamed := func() (*pipeline.Reply, error) {
				return pipeline.NewStreamReply(tc.proto, tc.header, &chunks{parts: []string{"x", "y"}, trailer: tc.trail}), nil
			}
			r := &recorder{answers: []func() (*pipeline.Reply, error){streamed}}
			obs := &observer{}
			s := resilience.New(resilience.Config{Policies: live.Static(f), Observer: obs})(r)
			call := &pipeline.Call{Service: "orders", Caller: "web", Proto: tc.proto, Op: http.MethodGet, Path: "/x"}
			reply, err := s.Send(context.Background(), call)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.calls) != 1 {
				t.Fatalf("a streamed reply: %d attempts, want 1", len(r.calls))
			}
			if got := obs.seen(); got != "" {
				t.Fatalf("the breaker changed before the stream ended: %q", got)
			}
			drain(t, reply.Body.Stream)
			if got, want := obs.seen(), "orders closed>open"; got != want {
				t.Fatalf("after the stream ended: changes %q, want %q", got, want)
			}
			if _, err := s.Send(context.Background(), call); !errors.Is(err, wire.ErrCircuitOpen) {
				t.Fatalf("err %v, want circuit-open", err)
			}
		})
	}
}
