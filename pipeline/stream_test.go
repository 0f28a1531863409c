package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// source is a stream made by a function: each call of next gives the
// next piece or io.EOF, under the reader's context.
type source struct {
	next    func(ctx context.Context) ([]byte, error)
	trailer nats.Header
	closed  chan struct{}
	once    sync.Once
}

func newSource(next func(ctx context.Context) ([]byte, error)) *source {
	return &source{next: next, closed: make(chan struct{})}
}

func (s *source) Next(ctx context.Context) ([]byte, error) { return s.next(ctx) }
func (s *source) Trailer() nats.Header                     { return s.trailer }
func (s *source) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// counting is n bytes of a repeated pattern in pieces of size, counted as
// they are read.
func counting(n, size int, read *atomic.Int64) *source {
	piece := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	left := n
	return newSource(func(ctx context.Context) ([]byte, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if left == 0 {
			return nil, io.EOF
		}
		k := min(left, len(piece))
		left -= k
		if read != nil {
			read.Add(int64(k))
		}
		return piece[:k], nil
	})
}

func streamCall(t *testing.T, body Stream) *Call {
	c := httpCall(t, "orders", http.MethodPost)
	if body != nil {
		c.Body = Body{Stream: body}
	}
	return c
}

func drain(t *testing.T, s Stream) ([]byte, nats.Header, error) {
	t.Helper()
	h := sha256.New()
	var n int
	for {
		b, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return h.Sum(nil), s.Trailer(), nil
		}
		if err != nil {
			return nil, nil, err
		}
		n += len(b)
		h.Write(b)
	}
}

// TestStreamFullDuplexLarge: a request body and an answer both far past
// max_payload cross the mesh as streams, at once (the handler answers
// before it has read the request, echoing it as it reads), bytes and
// trailers intact, and the middleware is told the stream's final outcome.
func TestStreamFullDuplexLarge(t *testing.T) {
	b := meshtest.BareBroker(t)
	st := &stub{}
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Middleware: []InboundMiddleware{st.inbound},
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			if !c.Body.Streamed() {
				return nil, errors.New("the request body came whole")
			}
			in := c.Body.Stream
			echo := newSource(func(ctx context.Context) ([]byte, error) { return in.Next(ctx) })
			echo.trailer = nats.Header{wire.HeaderTrailerPrefix + "X-Sum": {"42"}}
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, echo), nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	const size = 24 << 20
	reply, err := o.Send(context.Background(), streamCall(t, counting(size, 32<<10, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !reply.Streamed() || reply.Status != 200 {
		t.Fatalf("reply streamed %v status %d", reply.Streamed(), reply.Status)
	}
	sum, trailer, err := drain(t, reply.Body.Stream)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := drain(t, counting(size, 32<<10, nil))
	if !bytes.Equal(sum, want) {
		t.Error("the echoed body differs from the one sent")
	}
	if trailer.Get(wire.HeaderTrailerPrefix+"X-Sum") != "42" {
		t.Errorf("trailer %v", trailer)
	}
	reply.Body.Stream.Close()
	waitFor(t, func() bool { _, o := st.seen(); return len(o) == 1 })
	if _, o := st.seen(); o[0].Err != nil || o[0].Code != 200 {
		t.Errorf("the middleware was told %+v", o[0])
	}
}

// TestStreamLargeWholeReply: a whole answer too large for one message
// reaches the caller as a stream of its bytes.
func TestStreamLargeWholeReply(t *testing.T) {
	b := meshtest.BareBroker(t)
	big := bytes.Repeat([]byte("x"), 3<<20)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}, Body: Body{Bytes: big}}, nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := reply.ReadWhole(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(whole.Data, big) {
		t.Errorf("got %d bytes, want %d", len(whole.Data), len(big))
	}
}

// TestStreamSlowReaderBounded: a reader that stops reading stops the
// writer within the credit it granted: the handler's stream is read no
// further than the window and a frame ahead.
func TestStreamSlowReaderBounded(t *testing.T) {
	b := meshtest.BareBroker(t)
	var produced atomic.Int64
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, counting(1<<30, 16<<10, &produced)), nil
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{StreamWindow: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer reply.Body.Stream.Close()
	if _, err := reply.Body.Stream.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Wait until the writer has stopped.
	last := int64(-1)
	for i := 0; i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		n := produced.Load()
		if n == last {
			break
		}
		last = n
	}
	if n := produced.Load(); n > 256<<10+2*(16<<10) {
		t.Errorf("the writer produced %d bytes for a reader that read one piece (window 256 KiB)", n)
	}
}

// TestStreamCancelByCaller: closing a streamed answer before its end
// cancels the call at the callee: the handler's context ends and its
// stream is closed.
func TestStreamCancelByCaller(t *testing.T) {
	b := meshtest.BareBroker(t)
	cancelled := make(chan struct{})
	var src *source
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			context.AfterFunc(ctx, func() { close(cancelled) })
			src = newSource(func(ctx context.Context) ([]byte, error) {
				select {
				case <-time.After(10 * time.Millisecond):
					return []byte("tick\n"), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			})
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, src), nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := reply.Body.Stream.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	reply.Body.Stream.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the callee's handler context did not end after the caller closed the stream")
	}
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the callee's stream was not closed")
	}
}

// TestStreamOutlivesDefaultDeadline: a stream is bounded by its idle
// timeout and the caller's own deadline, not by the default deadline of a
// call (which bounds only the wait for its head); a quiet stream stays
// alive on keep-alives; the caller's own deadline ends it.
func TestStreamOutlivesDefaultDeadline(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Timeout: 300 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			n := 0
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, newSource(func(ctx context.Context) ([]byte, error) {
				if n == 3 {
					return nil, io.EOF
				}
				n++
				select {
				case <-time.After(400 * time.Millisecond): // longer than the idle timeout's third
					return []byte("event\n"), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			})), nil
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{Timeout: 300 * time.Millisecond, StreamIdle: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := drain(t, reply.Body.Stream); err != nil {
		t.Fatalf("a 1.2 s stream with a 300 ms default deadline and a 600 ms idle timeout: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	reply, err = o.Send(ctx, streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer reply.Body.Stream.Close()
	if _, _, err := drain(t, reply.Body.Stream); !errors.Is(err, wire.ErrTimeout) {
		t.Errorf("a 1.2 s stream with the caller's 700 ms deadline ended with %v, want timeout", err)
	}
}

// TestStreamHandlerFailsMidway: a stream that fails midway ends the
// caller's with the mesh error, carried as a frame.
func TestStreamHandlerFailsMidway(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			p := newPieces(nil, "a", "b")
			p.err = &wire.Error{Kind: wire.KindUpstream, Message: "the service went away"}
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, p), nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = drain(t, reply.Body.Stream)
	var e *wire.Error
	if !errors.As(err, &e) || e.Kind != wire.KindUpstream || e.Message != "the service went away" {
		t.Errorf("the stream ended with %v, want the service's failure", err)
	}
}

// TestStreamCalleeGone: the callee's connection closing mid-stream ends
// the caller's stream with an error within the idle timeout.
func TestStreamCalleeGone(t *testing.T) {
	b := meshtest.BareBroker(t)
	callee := meshtest.ServiceConn(t, b, "orders")
	serve(t, callee, "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, newSource(func(ctx context.Context) ([]byte, error) {
				select {
				case <-time.After(20 * time.Millisecond):
					return []byte("x"), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			})), nil
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{StreamIdle: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer reply.Body.Stream.Close()
	if _, err := reply.Body.Stream.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	callee.Close()
	_, _, err = drain(t, reply.Body.Stream)
	if !errors.Is(err, wire.ErrConnectionLost) {
		t.Errorf("the stream ended with %v, want connection-lost (idle)", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the stream ended %v after its callee went, idle timeout 600ms", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ticker is an endless stream of small pieces, until its context ends.
func ticker() *source {
	return newSource(func(ctx context.Context) ([]byte, error) {
		select {
		case <-time.After(20 * time.Millisecond):
			return []byte("x"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// TestStreamCallerGone: the caller's connection closing mid-stream (its
// agent killed) ends the callee's side within the idle timeout: the
// handler's context ends and its stream is closed, and the dispatch's
// slot is free again.
func TestStreamCallerGone(t *testing.T) {
	b := meshtest.BareBroker(t)
	ended := make(chan struct{})
	var src *source
	in := serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		MaxConcurrent: 1,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			if c.Body.Stream != nil {
				context.AfterFunc(ctx, func() { close(ended) })
				src = ticker()
				return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, src), nil
			}
			return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}}, nil
		}),
	})
	_ = in
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{StreamIdle: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	reply, err := o.Send(context.Background(), streamCall(t, ticker()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reply.Body.Stream.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	nc.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the callee's handler still runs 5s after its caller went (idle timeout 600ms)")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the callee noticed after %v", d)
	}
	<-src.closed
	// The slot (MaxConcurrent 1) is free: another call is served.
	o2 := outbound(t, meshtest.ServiceConn(t, b, "web"))
	waitFor(t, func() bool {
		r, err := o2.Send(context.Background(), streamCall(t, nil))
		return err == nil && r.Status == 200
	})
}

// TestStreamBrokerGone: the broker going away mid-stream ends both sides
// with an error within the idle timeout, never a hang.
func TestStreamBrokerGone(t *testing.T) {
	b := meshtest.BareBroker(t)
	ended := make(chan struct{})
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			context.AfterFunc(ctx, func() { close(ended) })
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, ticker()), nil
		}),
		StreamIdle: 600 * time.Millisecond,
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{StreamIdle: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer reply.Body.Stream.Close()
	if _, err := reply.Body.Stream.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.Shutdown(context.Background())
	if _, _, err := drain(t, reply.Body.Stream); err == nil {
		t.Error("the caller's stream ended cleanly without its broker")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the callee's handler still runs 5s after the broker went")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the stream ended %v after the broker went, idle timeout 600ms", d)
	}
}

// TestSlowAnswerOpensTheCall: a callee whose answer is slow to come opens
// the call (an accept frame after wire.StreamOpenAfter): the caller can
// cancel it before any answer, and the answer, whole, still arrives as
// one when it comes.
func TestSlowAnswerOpensTheCall(t *testing.T) {
	b := meshtest.BareBroker(t)
	cancelled := make(chan struct{})
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			// Long enough that the cancel below reaches it after the
			// call was opened, whatever the scheduling (a review saw
			// 2 x StreamOpenAfter lose that race once).
			wait := 2 * wire.StreamOpenAfter
			if c.Header.Get("X-Long") != "" {
				wait = 3 * time.Second
			}
			select {
			case <-time.After(wait):
				return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}, Body: Body{Bytes: []byte("slow")}}, nil
			case <-ctx.Done():
				close(cancelled)
				return nil, ctx.Err()
			}
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	reply, err := o.Send(context.Background(), streamCall(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if reply.Streamed() || string(reply.Body.Bytes) != "slow" {
		t.Errorf("a slow whole answer: streamed %v, %q", reply.Streamed(), reply.Body.Bytes)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(wire.StreamOpenAfter+300*time.Millisecond, cancel)
	long := streamCall(t, nil)
	long.Header.Set("X-Long", "1")
	if _, err := o.Send(ctx, long); err == nil {
		t.Fatal("a cancelled call answered")
	}
	select {
	case <-cancelled:
	case <-time.After(3 * time.Second):
		t.Fatal("the callee's handler was not cancelled with its caller")
	}
}

// TestSilentGRPCStreamOutlivesDefault: a gRPC server stream (marked so by
// its adapter, Mesh-Stream-Deadline: none) whose service sends its first
// message after the default deadline is not cut by it: the call is open,
// and bounded by its idle timeout.
func TestSilentGRPCStreamOutlivesDefault(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Timeout: 300 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			select {
			case <-time.After(900 * time.Millisecond):
				return NewStreamReply(c.Proto, nats.Header{}, newPieces(nats.Header{"Mesh-Grpc-Status": {"0"}}, "late")), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{Timeout: 300 * time.Millisecond, StreamIdle: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	c := &Call{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/x.Y/Watch",
		Header: nats.Header{grpcwire.HeaderGRPCStream: {"1"}, "Mesh-Grpc-Method": {"/x.Y/Watch"}, wire.HeaderStreamDeadline: {"none"}}}
	reply, err := o.Send(context.Background(), c)
	if err != nil {
		t.Fatalf("a silent gRPC stream, default deadline 300ms: %v", err)
	}
	if _, _, err := drain(t, reply.Body.Stream); err != nil {
		t.Fatal(err)
	}
}

// TestSlowUploadOutlivesDefault: a streamed request body that takes
// longer than the default deadline to send is not cut by it: the default
// bounds the answer's head from the end of the body.
func TestSlowUploadOutlivesDefault(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Timeout: 300 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			n := 0
			for {
				p, err := c.Body.Stream.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, err
				}
				n += len(p)
			}
			return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}, Body: Body{Bytes: []byte(strconv.Itoa(n))}}, nil
		}),
	})
	nc := meshtest.ServiceConn(t, b, "web")
	o, err := NewOutbound(nc, OutboundConfig{Timeout: 300 * time.Millisecond, StreamIdle: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	n := 0
	slow := newSource(func(ctx context.Context) ([]byte, error) {
		if n == 10 {
			return nil, io.EOF
		}
		n++
		time.Sleep(100 * time.Millisecond)
		return []byte("0123456789"), nil
	})
	reply, err := o.Send(context.Background(), streamCall(t, slow))
	if err != nil {
		t.Fatalf("a 1 s upload, default deadline 300 ms: %v", err)
	}
	if string(reply.Body.Bytes) != "100" {
		t.Errorf("the service read %q bytes, want 100", reply.Body.Bytes)
	}
}

// TestStreamIdleBounds: an idle timeout every stream's peer would refuse
// (wire.HeaderIdle's bounds) is refused when the pipeline is made, not at
// each call (a new user's --stream-idle 1h).
func TestStreamIdleBounds(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "web")
	for _, d := range []time.Duration{time.Hour, 50 * time.Millisecond} {
		if _, err := NewOutbound(nc, OutboundConfig{StreamIdle: d}); err == nil {
			t.Errorf("an outbound pipeline with a stream idle timeout of %v", d)
		}
		if _, err := NewInbound(nc, InboundConfig{StreamIdle: d, Handler: HandlerFunc(nil)}); err == nil {
			t.Errorf("an inbound pipeline with a stream idle timeout of %v", d)
		}
	}
	o, err := NewOutbound(nc, OutboundConfig{StreamIdle: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
}
