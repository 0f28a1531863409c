package pipeline

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestStreamedReplyTooLargeInbound (review of issue 17): a handler's
// streamed reply past max_payload is answered upstream-unavailable (the
// service's failure), and the middleware (telemetry, passive health) is
// told the same; before, readStream's Close ended the stream as given up
// by its caller (a cancelled timeout), which no rule holds against the
// service, so the metrics disagreed with the answer.
func TestStreamedReplyTooLargeInbound(t *testing.T) {
	b := meshtest.BareBroker(t)
	st := &stub{}
	big := strings.Repeat("x", 700<<10)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Middleware: []InboundMiddleware{st.inbound},
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, newPieces(nil, big, big)), nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	_, err := o.Send(context.Background(), httpCall(t, "orders", http.MethodGet))
	answered := wire.FromError(err)
	if answered.Kind != wire.KindUpstream {
		t.Fatalf("answer: %v, want upstream", err)
	}
	_, outcomes := st.seen()
	if len(outcomes) != 1 {
		t.Fatalf("outcomes %v, want one", outcomes)
	}
	o1 := outcomes[0]
	if o1.Err == nil || o1.Err.Kind != wire.KindUpstream {
		t.Fatalf("the middleware was told %+v (err %v), the caller was answered %s", o1, o1.Err, answered.Kind)
	}
}
