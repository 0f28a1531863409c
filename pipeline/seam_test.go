package pipeline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// stub is a middleware that observes what passes it, as the mesh's own
// do: the reply it returns, and the reply's outcome, once, at its end.
type stub struct {
	mu       sync.Mutex
	replies  []*Reply
	outcomes []wire.Outcome
}

func (s *stub) observe(reply *Reply) {
	s.mu.Lock()
	s.replies = append(s.replies, reply)
	s.mu.Unlock()
	reply.OnEnd(func(o wire.Outcome) {
		s.mu.Lock()
		s.outcomes = append(s.outcomes, o)
		s.mu.Unlock()
	})
}

func (s *stub) outbound(next Sender) Sender {
	return SendFunc(func(ctx context.Context, c *Call) (*Reply, error) {
		reply, err := next.Send(ctx, c)
		if err == nil {
			s.observe(reply)
		}
		return reply, err
	})
}

func (s *stub) inbound(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
		reply, err := next.ServeCall(ctx, c)
		if err == nil {
			s.observe(reply)
		}
		return reply, err
	})
}

func (s *stub) seen() ([]*Reply, []wire.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Reply(nil), s.replies...), append([]wire.Outcome(nil), s.outcomes...)
}

// TestSeamStreamedReply: a reply whose body arrives in several pieces
// passes every middleware unchanged (the one Reply, its pieces in order,
// each as it comes), and is classified once, at its end, by its trailer's
// status: every middleware is told that one outcome, once, though its
// reader reads past the end and closes it too.
func TestSeamStreamedReply(t *testing.T) {
	b := meshtest.BareBroker(t)
	body := newPieces(nats.Header{grpcwire.HeaderGRPCStatus: {"14"}, grpcwire.HeaderGRPCMessage: {"gone"}}, "one", "two", "three")
	var made *Reply
	terminal := func(Sender) Sender {
		return SendFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			made = NewStreamReply(c.Proto, nats.Header{"Content-Type": {"application/grpc"}}, body)
			return made, nil
		})
	}
	stubs := []*stub{{}, {}, {}}
	o := outbound(t, meshtest.ServiceConn(t, b, "web"), stubs[0].outbound, stubs[1].outbound, stubs[2].outbound, terminal)

	reply, err := o.Send(context.Background(), &Call{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/pkg.S/Watch"})
	if err != nil {
		t.Fatal(err)
	}
	if reply != made || !reply.Streamed() {
		t.Fatalf("the caller got %p (streamed %v), the terminal made %p", reply, reply.Streamed(), made)
	}
	if o := reply.Outcome(); o.Proto != wire.ProtoGRPC || o.Code != int(codes.OK) {
		t.Errorf("before its end, the stream's outcome is its header's: %+v", o)
	}
	for i, s := range stubs {
		replies, outcomes := s.seen()
		if len(replies) != 1 || replies[0] != made {
			t.Errorf("middleware %d saw replies %v, want the terminal's alone", i, replies)
		}
		if len(outcomes) != 0 {
			t.Errorf("middleware %d was told an outcome before the stream ended: %v", i, outcomes)
		}
	}

	var got []string
	for {
		p, err := reply.Body.Stream.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(p))
	}
	if len(got) != 3 || got[0] != "one" || got[1] != "two" || got[2] != "three" {
		t.Errorf("pieces %q, want one, two, three", got)
	}
	// Past its end, and closed: nothing more is told.
	reply.Body.Stream.Next(context.Background())
	reply.Body.Stream.Close()

	want := wire.Outcome{Proto: wire.ProtoGRPC, Code: int(codes.Unavailable)}
	for i, s := range stubs {
		if _, outcomes := s.seen(); len(outcomes) != 1 || outcomes[0] != want {
			t.Errorf("middleware %d was told %v, want %v once", i, outcomes, want)
		}
	}
	if body.trailers != 1 {
		t.Errorf("the trailer was read %d times, want once", body.trailers)
	}
	if o := reply.Outcome(); o != want || !o.ServerFailed() {
		t.Errorf("after its end, the outcome is %+v, want %+v", o, want)
	}
	if reply.Message != "" {
		t.Errorf("message %q: a stream's header has none", reply.Message)
	}
}

// TestSeamStreamedReplyClosed: a stream its reader gives up (closes
// midway) ends as a call given up, which no variant holds against the
// service; one that fails midway ends with that mesh error.
func TestSeamStreamedReplyClosed(t *testing.T) {
	given := NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, newPieces(nil, "a", "b"))
	var told []wire.Outcome
	given.OnEnd(func(o wire.Outcome) { told = append(told, o) })
	given.Body.Stream.Next(context.Background())
	given.Body.Stream.Close()
	given.Body.Stream.Close()
	if len(told) != 1 || told[0].Err == nil || told[0].DestinationFailed() || told[0].PassiveHealth() != wire.Neither {
		t.Errorf("closed midway: told %+v, want one outcome that blames no one", told)
	}

	broken := newPieces(nil, "a")
	broken.err = nats.ErrConnectionClosed
	failed := NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, broken)
	failed.Body.Stream.Next(context.Background())
	failed.Body.Stream.Next(context.Background())
	o := failed.Outcome()
	if o.Err == nil || o.Err.Kind != wire.KindConnectionLost || !o.CountsAsError() {
		t.Errorf("failed midway: %+v, want connection-lost", o)
	}
	// An observer that comes after the end is told at once.
	var late []wire.Outcome
	failed.OnEnd(func(o wire.Outcome) { late = append(late, o) })
	if len(late) != 1 || late[0] != o {
		t.Errorf("a late observer was told %v, want %v", late, o)
	}
}

// TestSeamStreamedReplyInbound: a handler's streamed reply passes the
// inbound middleware unchanged, is classified once at its end, and reaches
// the caller as a stream (the stream protocol): its pieces, then its
// trailer.
func TestSeamStreamedReplyInbound(t *testing.T) {
	b := meshtest.BareBroker(t)
	stubs := []*stub{{}, {}}
	var made *Reply
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Middleware: []InboundMiddleware{stubs[0].inbound, stubs[1].inbound},
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			made = NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}, "Content-Type": {"text/plain"}},
				newPieces(nats.Header{wire.HeaderTrailerPrefix + "X-Sum": {"3"}}, "a", "b", "c"))
			return made, nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	reply, err := o.Send(context.Background(), httpCall(t, "orders", http.MethodGet))
	if err != nil {
		t.Fatal(err)
	}
	if !reply.Streamed() {
		t.Fatal("the streamed reply arrived whole")
	}
	whole, err := reply.ReadWhole(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpwire.DecodeResponse(whole)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != "abc" || resp.Trailer.Get("X-Sum") != "3" {
		t.Errorf("answer %d %q, trailer %v; want 200 \"abc\" with X-Sum 3", resp.StatusCode, got, resp.Trailer)
	}
	for i, s := range stubs {
		replies, outcomes := s.seen()
		if len(replies) != 1 || replies[0] != made {
			t.Errorf("middleware %d saw replies %v, want the handler's alone", i, replies)
		}
		if len(outcomes) != 1 || outcomes[0] != (wire.Outcome{Proto: wire.ProtoHTTP, Code: 200}) {
			t.Errorf("middleware %d was told %v, want 200 once", i, outcomes)
		}
	}
}
