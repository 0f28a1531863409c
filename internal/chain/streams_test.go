package chain

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
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

// TestOutboundPassesStreamedReply: the mesh's whole outbound middleware
// (telemetry of the call and of the attempt, routing, authorization, the
// resilience policies, fault injection) passes a streamed reply to the
// caller as the service made it, piece by piece; an HTTP 503 that
// streams is not retried (it commits the call), and the call is counted
// once, when its stream ends, as the failure its status says.
func TestOutboundPassesStreamedReply(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
    routes:
      - name: items
        match: {path_prefix: /items}
        policy: {timeout: 5s, retries: {attempts: 3}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	var made *pipeline.Reply
	attempts := 0
	var s pipeline.Sender = pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
		attempts++
		made = pipeline.NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"503"}}, &chunks{"a", "b", "c"})
		return made, nil
	})
	mws := Outbound(Options{Service: "web", Policies: live.Static(f), Telemetry: tel})
	for i := len(mws) - 1; i >= 0; i-- {
		s = mws[i](s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pipeline.DefaultTimeout)
	defer cancel()
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/items/1",
		Header: nats.Header{wire.HeaderMethod: {http.MethodGet}, wire.HeaderPath: {"/items/1"}}}
	reply, err := s.Send(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if reply != made || attempts != 1 {
		t.Fatalf("the caller got %p after %d attempts, want %p after 1", reply, attempts, made)
	}
	requests := func() (n, errs uint64) {
		for _, e := range tel.Snapshot().Outbound {
			n, errs = n+e.Requests, errs+e.Errors
		}
		return n, errs
	}
	if n, _ := requests(); n != 0 {
		t.Fatalf("%d calls counted before the stream ended", n)
	}
	var got []byte
	for {
		p, err := reply.Body.Stream.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	if string(got) != "abc" {
		t.Errorf("body %q, want abc", got)
	}
	if n, errs := requests(); n != 1 || errs != 1 {
		t.Errorf("after the stream ended: %d calls, %d errors; want 1 and 1", n, errs)
	}
}

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
