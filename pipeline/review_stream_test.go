package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Review tests (issue 18): each fails on the code it demonstrates a
// defect of.

// TestReviewSlowSteadyReaderIsKilled: a reader that keeps reading, only
// slowly, is not a reader that stopped. The receiver grants credit back
// only once a quarter of its window has been read, and the sender fails
// the stream when it has been granted nothing for the idle timeout: any
// reader slower than Window/4 per idle timeout (26 KB/s with the
// defaults, 1 MiB and 10 s: a slow client, a gRPC client that works on
// each message) has its stream cut with "it stopped reading". Here: a
// 64 KiB window, a 300 ms idle timeout, a reader taking 1 KiB every
// 20 ms (50 KB/s) from a 128 KiB answer.
func TestReviewSlowSteadyReaderIsKilled(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, counting(128<<10, 1<<10, nil)), nil
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{StreamWindow: 64 << 10, StreamIdle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer reply.Body.Stream.Close()
	n := 0
	for {
		p, err := reply.Body.Stream.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("a reader reading steadily at 50 KB/s was cut after %d bytes: %v", n, err)
		}
		n += len(p)
		time.Sleep(20 * time.Millisecond)
	}
	if n != 128<<10 {
		t.Errorf("read %d bytes", n)
	}
}

// TestReviewWholeAnswerHeaderPastMaxPayload: a whole answer "fits" when
// its data plus 8 KiB does, whatever its header (up to 64 KiB of the
// service's own): one whose header is larger is refused by the broker
// (nats.ErrMaxPayload), runStream only logs it, and the caller gets no
// answer at all until its deadline. The unary dispatch (respond)
// replaces such a reply with a mesh error.
func TestReviewWholeAnswerHeaderPastMaxPayload(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	mp := svc.MaxPayload()
	serve(t, svc, "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			h := nats.Header{wire.HeaderStatus: {"200"}, "X-Big": {strings.Repeat("h", 20<<10)}}
			return &Reply{Proto: c.Proto, Status: 200, Header: h, Body: Body{Bytes: bytes.Repeat([]byte("b"), int(mp)-12<<10)}}, nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	reply, err := o.Send(ctx, streamCall(t, nil))
	if err == nil {
		reply.Body.Stream.Close()
		return // answered (streamed): fine
	}
	if errors.Is(err, wire.ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Errorf("no answer: %v after %v (the callee's publish failed and was only logged)", err, time.Since(start).Round(time.Millisecond))
	}
}

// TestReviewCancelAfterDefaultDeadlineLost: a call waiting for its head
// past the default deadline (a gRPC stream, whose head may wait: Unbounded)
// can still be cancelled by its caller, says Request.Unbounded. But
// withoutDeadline watches the context that carries the default deadline:
// its AfterFunc runs once, when that deadline passes (and does nothing,
// the error being DeadlineExceeded); a cancel of the caller's own
// context after that is never seen. Both sides keep pinging: the call,
// its goroutines and the callee's slot live until the service answers,
// which may be never (a client that cancels a silent Watch).
func TestReviewCancelAfterDefaultDeadlineLost(t *testing.T) {
	b := meshtest.BareBroker(t)
	handlerDone := make(chan struct{})
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			defer close(handlerDone)
			select {
			case <-ctx.Done(): // a silent stream: no head until cancelled
				return nil, ctx.Err()
			case <-time.After(20 * time.Second):
				return nil, errors.New("still running after 20s")
			}
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{Timeout: 300 * time.Millisecond, StreamIdle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	c := &Call{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/x.Y/Watch",
		Header: nats.Header{grpcwire.HeaderGRPCStream: {"1"}, "Mesh-Grpc-Method": {"/x.Y/Watch"}}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(800*time.Millisecond, cancel) // after the 300ms default
	done := make(chan error, 1)
	go func() {
		_, err := o.Send(ctx, c)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("answered")
		}
	case <-time.After(4 * time.Second):
		t.Error("the caller cancelled 800ms in (default deadline 300ms): Send still waits 3s later")
	}
	select {
	case <-handlerDone:
	case <-time.After(time.Second):
		t.Error("the callee's handler still runs: its call was never cancelled")
	}
}

// TestReviewHeadTimerWaitsForHandlerToRead: with Mesh-Stream-Deadline:
// head, the callee starts the head's deadline when its handler has read
// the request body to its end (AfterBody: the Body's onEOF), not when
// the body has arrived. A handler that does not read a small streamed
// body (it fits the window: the caller's pump is never stalled) and
// does not answer is bounded by nothing: the caller waits for the head
// unbounded (Request.Unbounded), both sides keep pinging, and the call
// never ends. (The HTTP Upstream reads the body into the service's
// socket, which hides it; an in-process handler, or a gRPC client stream,
// does not.)
func TestReviewHeadTimerWaitsForHandlerToRead(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			select {
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			case <-time.After(10 * time.Second):
				return nil, errors.New("never bounded")
			}
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{Timeout: 300 * time.Millisecond, StreamIdle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := o.Send(ctx, streamCall(t, newPieces(nil, "a small body")))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, wire.ErrTimeout) {
			t.Errorf("got %v, want timeout", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("a call whose handler neither reads its small body nor answers: no answer after %v (default deadline 300ms)", time.Since(start).Round(time.Millisecond))
	}
}
