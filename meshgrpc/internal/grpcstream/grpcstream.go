package grpcstream

import (
	"context"
	"errors"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// ErrClosed is what a write to a pipe its reader closed returns.
var ErrClosed = errors.New("meshgrpc: the stream was closed")

// PipeBuffer is how many bytes of pieces a pipe holds for its reader.
// While the reader is busy (sending the last piece as a NATS message),
// the writer's next pieces wait in the pipe, and the reader takes them
// all as one piece: a stream of small messages (gRPC's 1 KiB messages)
// goes as fewer, larger stream frames, each costing the mesh one message
// through the broker instead of one per gRPC message.
const PipeBuffer = 32 << 10

// Pipe is a pipeline.Stream whose pieces a writer pushes, one at a time:
// a write returns once its piece is in the pipe, which holds up to
// PipeBuffer bytes (any one piece, however large, when it is empty), so a
// stream holds a bounded amount in memory and a slow reader slows the
// writer; or once the reader closed the stream. The reader takes every
// piece waiting, joined, as one. The writer ends it with End. One
// goroutine writes, one reads.
type Pipe struct {
	mu      sync.Mutex
	pending [][]byte // pieces the reader has not taken, in order
	size    int      // their bytes
	ended   bool     // the writer is done
	err     error    // the writer's end, nil for io.EOF
	tr      nats.Header

	ready  chan struct{} // a piece or the end came (capacity 1)
	room   chan struct{} // the reader took the pieces (capacity 1)
	closed chan struct{} // closed by Close: the reader gave up

	closeOnce sync.Once
}

func NewPipe() *Pipe {
	return &Pipe{ready: make(chan struct{}, 1), room: make(chan struct{}, 1), closed: make(chan struct{})}
}

// signal wakes whoever may wait on ch, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Write hands b to the reader. It fails with ErrClosed once the
// reader closed the stream, and with ctx's error. b is the reader's once
// written.
func (p *Pipe) Write(ctx context.Context, b []byte) error {
	for {
		select {
		case <-p.closed:
			return ErrClosed
		default:
		}
		p.mu.Lock()
		if p.size == 0 || p.size+len(b) <= PipeBuffer {
			p.pending = append(p.pending, b)
			p.size += len(b)
			p.mu.Unlock()
			signal(p.ready)
			return nil
		}
		p.mu.Unlock()
		select {
		case <-p.room:
		case <-p.closed:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// End ends the stream: with io.EOF and trailer when err is nil, else with
// err. Only the first end counts; no write may follow.
func (p *Pipe) End(err error, trailer nats.Header) {
	p.mu.Lock()
	if !p.ended {
		p.ended, p.err, p.tr = true, err, trailer
	}
	p.mu.Unlock()
	signal(p.ready)
}

// Next implements pipeline.Stream.
func (p *Pipe) Next(ctx context.Context) ([]byte, error) {
	for {
		p.mu.Lock()
		if n := len(p.pending); n > 0 {
			b := p.pending[0]
			if n > 1 {
				b = make([]byte, 0, p.size)
				for _, piece := range p.pending {
					b = append(b, piece...)
				}
			}
			clear(p.pending)
			p.pending, p.size = p.pending[:0], 0
			p.mu.Unlock()
			signal(p.room)
			return b, nil
		}
		if p.ended {
			// The writer writes, then ends, on one goroutine: its pieces
			// are all taken once it has ended and none is pending.
			err := p.err
			p.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		p.mu.Unlock()
		select {
		case <-p.ready:
		case <-p.closed:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Trailer implements pipeline.Stream.
func (p *Pipe) Trailer() nats.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return p.tr
	}
	return nil
}

// Close implements pipeline.Stream: a write waiting, or to come, fails.
func (p *Pipe) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	return nil
}

// Prefixed is a stream that yields the pieces First, already read from
// Rest, then Rest.
type Prefixed struct {
	First [][]byte
	Rest  pipeline.Stream
}

func (s *Prefixed) Next(ctx context.Context) ([]byte, error) {
	if len(s.First) > 0 {
		b := s.First[0]
		s.First = s.First[1:]
		return b, nil
	}
	return s.Rest.Next(ctx)
}

func (s *Prefixed) Trailer() nats.Header { return s.Rest.Trailer() }
func (s *Prefixed) Close() error         { return s.Rest.Close() }

// onePiece is a stream of b, then its end with trailer.
type onePiece struct {
	b       []byte
	trailer nats.Header
	done    bool
}

func (s *onePiece) Next(context.Context) ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	s.done = true
	return s.b, nil
}

func (s *onePiece) Trailer() nats.Header {
	if s.done {
		return s.trailer
	}
	return nil
}

func (s *onePiece) Close() error { return nil }

// Replayable is a body of b that streams, and replays.
func Replayable(b []byte) pipeline.Body {
	return pipeline.Body{Stream: &onePiece{b: b}, Replay: func() (pipeline.Stream, error) { return &onePiece{b: b}, nil }}
}

// Messages reads the gRPC messages of a streaming call's body, whole or
// streamed. One goroutine reads it.
type Messages struct {
	whole  []byte          // a whole body, read once
	stream pipeline.Stream // or a streamed one
	fed    bool
	r      grpcwire.MessageReader
}

func BodyMessages(b pipeline.Body) *Messages {
	return &Messages{whole: b.Bytes, stream: b.Stream}
}

// Next returns the next message, io.EOF after the last, or the body's
// failure: a stream's error, a malformed message (a *wire.Error), a
// message cut short at the end (internal).
func (m *Messages) Next(ctx context.Context) ([]byte, error) {
	for {
		msg, ok, err := m.r.Next()
		if err != nil {
			return nil, err
		}
		if ok {
			return msg, nil
		}
		var piece []byte
		switch {
		case m.stream != nil:
			piece, err = m.stream.Next(ctx)
		case !m.fed:
			m.fed, piece = true, m.whole
		default:
			err = io.EOF
		}
		if errors.Is(err, io.EOF) {
			if m.r.Partial() {
				return nil, &wire.Error{Kind: wire.KindInternal, Message: "a gRPC stream's body ended within a message"}
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		m.r.Feed(piece)
	}
}

// Trailer is what came after the body: a stream's trailer; for a whole
// body, nil (a whole reply's trailer is in its header).
func (m *Messages) Trailer() nats.Header {
	if m.stream != nil {
		return m.stream.Trailer()
	}
	return nil
}

// ReplyReader reads the answer to a streaming call: its header metadata,
// its messages, and at their end its status and trailer metadata.
type ReplyReader struct {
	body     *Messages
	head     nats.Header // the reply's header
	streamed bool
	// Header is the answer's header metadata; Trailer and Status are
	// set once Next has returned io.EOF.
	Header  metadata.MD
	Trailer metadata.MD
	Status  *status.Status
}

// ReadReply reads r's head. A malformed one is a *wire.Error.
func ReadReply(r *pipeline.Reply) (*ReplyReader, error) {
	head, err := grpcwire.DecodeResponse(&nats.Msg{Header: r.Header})
	if err != nil {
		return nil, err
	}
	return &ReplyReader{body: BodyMessages(r.Body), head: r.Header, streamed: r.Streamed(), Header: head.Header}, nil
}

// Next returns the next message; at the end io.EOF, with Status and
// Trailer set (the service's status, whatever its code); a failure of the
// body (a mesh error, ctx's) as it is.
func (rr *ReplyReader) Next(ctx context.Context) ([]byte, error) {
	msg, err := rr.body.Next(ctx)
	if !errors.Is(err, io.EOF) {
		return msg, err
	}
	// The status is the trailer's; or the header's, for an answer whole
	// (one message, or streamed only because it was larger than one).
	end := rr.head
	if tr := rr.body.Trailer(); len(tr) > 0 {
		end = withTrailer(rr.head, tr)
	}
	if rr.streamed && end.Get(grpcwire.HeaderGRPCStatus) == "" {
		// A whole reply without one is a NATS-native answer, read as
		// DecodeResponse reads it; a stream always ends with one.
		return nil, &wire.Error{Kind: wire.KindInternal, Message: "a gRPC stream ended without a status"}
	}
	resp, err := grpcwire.DecodeResponse(&nats.Msg{Header: end})
	if err != nil {
		return nil, err
	}
	rr.Status, rr.Trailer = resp.Status, resp.Trailer
	return nil, io.EOF
}

// withTrailer is a new header of head's fields and tr's, tr's replacing
// head's of the same name.
func withTrailer(head, tr nats.Header) nats.Header {
	h := make(nats.Header, len(head)+len(tr))
	maps.Copy(h, head)
	maps.Copy(h, tr)
	return h
}

// Answer is the body of a service's streamed answer: a pipe its messages
// and trailer are written to, and the cancel of the service's call, which
// closing it before its end calls.
type Answer struct {
	*Pipe
	Cancel context.CancelFunc
}

func (a *Answer) Close() error {
	a.Cancel()
	return a.Pipe.Close()
}

// MessageLimits is lim for a gRPC message that may be larger than one
// NATS message: its header's bounds as lim has them, and room for one
// message as large as gRPC takes by default (grpcwire.DefaultMaxMessage)
// when max_payload is smaller. The stream protocol carries such a message
// in pieces.
func MessageLimits(lim wire.Limits) wire.Limits {
	lim.MaxPayload = max(lim.PayloadLimit(), grpcwire.DefaultMaxMessage+grpcwire.MessagePrefixLen+int64(lim.HeaderBytesLimit()))
	return lim
}

// AnswerWait is how long Settle waits for an answer to end. A unary
// method's answer (which the proxy calls as a stream) ends right after its
// message: grpc-go writes the message and the trailers together.
const AnswerWait = 5 * time.Millisecond

// Settle is the reply to a streaming call whose answer has begun, with
// head, and goes on in a: whole, in one message (head, trailer, and the
// messages framed), when it ends within AnswerWait and fits in one
// message under lim, since a whole answer costs the stream protocol no
// stream; else streamed, the messages read so far first. A unary method
// called as a stream, or a short server stream, is answered whole so.
func Settle(ctx context.Context, head nats.Header, a *Answer, lim wire.Limits) (*pipeline.Reply, error) {
	wctx, stop := context.WithTimeout(ctx, AnswerWait)
	defer stop()
	var first [][]byte
	size := int64(0)
	for size <= lim.PayloadLimit() {
		b, err := a.Next(wctx)
		switch {
		case err == nil:
			first = append(first, b)
			size += int64(len(b))
			continue
		case errors.Is(err, io.EOF):
			m := &nats.Msg{Header: withTrailer(head, a.Trailer()), Data: make([]byte, 0, size)}
			for _, b := range first {
				m.Data = append(m.Data, b...)
			}
			if lim.Check(m, 0, 0) != nil {
				break
			}
			a.Close()
			return pipeline.ReplyFromMsg(wire.ProtoGRPC, m), nil
		case ctx.Err() != nil:
			a.Close()
			return nil, context.Cause(ctx)
		case wctx.Err() == nil:
			// The answer failed before its end.
			a.Close()
			return nil, err
		}
		break
	}
	return pipeline.NewStreamReply(wire.ProtoGRPC, head, &Prefixed{First: first, Rest: a}), nil
}
