package chain

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// chunks is a Stream of its pieces, with no trailer.
type chunks []string

func (s *chunks) Next(context.Context) ([]byte, error) {
	if len(*s) == 0 {
		return nil, io.EOF
	}
	p := (*s)[0]
	*s = (*s)[1:]
	return []byte(p), nil
}

func (s *chunks) Trailer() nats.Header { return nil }
func (s *chunks) Close() error         { return nil }

// TestInboundPassesStreamedReply: the inbound middleware (telemetry,
// authorization) passes a handler's streamed reply as it is, and counts
// the served call once, when its stream ends.
func TestInboundPassesStreamedReply(t *testing.T) {
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	o := options(t)
	o.Telemetry = tel
	var made *pipeline.Reply
	var h pipeline.Handler = pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
		made = pipeline.NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, &chunks{"a", "b"})
		return made, nil
	})
	mws := Inbound(o)
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/public",
		Header: nats.Header{wire.HeaderMethod: {http.MethodGet}, wire.HeaderPath: {"/public"}}}
	reply, err := h.ServeCall(context.Background(), c)
	if err != nil || reply != made {
		t.Fatalf("reply %p, err %v; want the handler's %p", reply, err, made)
	}
	served := func() (n uint64) {
		for _, e := range tel.Snapshot().Inbound {
			n += e.Requests
		}
		return n
	}
	if n := served(); n != 0 {
		t.Fatalf("%d calls counted before the stream ended", n)
	}
	whole, err := reply.ReadWhole(context.Background(), 1<<20)
	if err != nil || string(whole.Data) != "ab" {
		t.Fatalf("read whole: %q, %v", whole.Data, err)
	}
	if n := served(); n != 1 {
		t.Errorf("after the stream ended: %d calls, want 1", n)
	}
}
