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

// TestStreamedReplyClosedWhenContextEnds: the first try answers with
// a streamed reply just as the call's context ends (the client went away, or
// its deadline passed as the header arrived). The call then fails with the
// context's error, and the reply it discards must still be closed: its
// stream otherwise never ends and its OnEnd observers (telemetry, passive
// health, a half-open breaker's permit) never hear of it.
func TestStreamedReplyClosedWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := &chunks{parts: []string{"x", "y"}}
	ended := 0
	streamed := func() (*pipeline.Reply, error) {
		cancel() // the context ends as the answer arrives
		r := pipeline.NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, body)
		r.OnEnd(func(wire.Outcome) { ended++ })
		return r, nil
	}
	r := &recorder{answers: []func() (*pipeline.Reply, error){streamed}}
	s := resilience.New(resilience.Config{})(r) // the built-in policy: retries on
	call := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x"}
	reply, err := s.Send(ctx, call)
	if err == nil {
		reply.Body.Stream.Close()
		return // the reply was the answer: its caller closes it
	}
	if !body.isClosed() || ended != 1 {
		t.Fatalf("err %v, and the discarded streamed reply: closed %v, OnEnd fired %d times; want closed, once", err, body.isClosed(), ended)
	}
}
