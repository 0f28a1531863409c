package meshhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// WholeBodyMax is the largest body that crosses the mesh whole, in the
// call's one message, when its length is known up front: a request's from
// its Content-Length, an answer's once the service has written it. Larger
// bodies, and bodies of unknown length (chunked), are streams
// (pipeline.Stream), sent in pieces as they arrive. A whole request body
// is replayable (a retry, a hedge, a mirror reads it again) at the cost of
// holding it; 64 KiB keeps that cost small. Under a max_payload below
// twice this, half of max_payload is the bound, the rest left for the
// headers.
const WholeBodyMax = 64 << 10

// wholeLimit is the largest body sent whole under lim ([WholeBodyMax]).
func wholeLimit(lim wire.Limits) int64 { return min(WholeBodyMax, lim.PayloadLimit()/2) }

// pieceSize is the most a body stream reads at once: io.Copy's buffer.
const pieceSize = 32 << 10

var _ pipeline.Stream = (*bodyStream)(nil)

// bodyStream is an HTTP body as a pipeline.Stream: read in pieces, its
// trailer taken at its end.
type bodyStream struct {
	body io.ReadCloser
	// trailer, when set, is the trailer once the body has ended (an HTTP
	// body's Trailer map is complete when its Read returns io.EOF).
	trailer func() nats.Header
	// fail makes a failed read the stream's error, a *wire.Error of the
	// side that broke.
	fail func(error) error
	// unblock, when set, ends a Read in progress before Close closes the
	// body: a server's request body waits for its client, and its Close
	// waits for that Read (net/http's body holds a lock across both).
	unblock func()

	buf     []byte
	pending error // an error that came with the last piece
	t       nats.Header
	eof     atomic.Bool
	closed  atomic.Bool
	once    sync.Once
}

func (s *bodyStream) Next(ctx context.Context) ([]byte, error) {
	if s.eof.Load() {
		return nil, io.EOF
	}
	if s.closed.Load() {
		return nil, errStreamClosed
	}
	if err := s.pending; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, wire.FromError(err)
	}
	if ctx.Done() != nil {
		// A read waits for the body's writer: ctx ending ends the stream.
		stop := context.AfterFunc(ctx, func() { s.Close() })
		defer stop()
	}
	if s.buf == nil {
		s.buf = make([]byte, pieceSize)
	}
	for {
		n, err := s.body.Read(s.buf)
		if err != nil && err != io.EOF && ctx.Err() != nil {
			return nil, wire.FromError(ctx.Err())
		}
		switch {
		case err == io.EOF:
			if s.trailer != nil {
				s.t = s.trailer()
			}
			s.eof.Store(true)
			if n == 0 {
				return nil, io.EOF
			}
		case err != nil:
			err = s.fail(err)
			if n == 0 {
				return nil, err
			}
			s.pending = err
		case n == 0:
			continue
		}
		return s.buf[:n], nil
	}
}

func (s *bodyStream) Trailer() nats.Header { return s.t }

func (s *bodyStream) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		if s.unblock != nil && !s.eof.Load() {
			s.unblock()
		}
		err = s.body.Close()
	})
	return err
}

// errStreamClosed is what a stream's Next returns once it is closed.
var errStreamClosed = &wire.Error{Kind: wire.KindTimeout, Message: "the stream was closed", Err: context.Canceled}

// requestFailure is how a client's request body that broke fails its
// stream: the listener's own verdict (a body that stalled:
// request-timeout) stands, anything else is a broken request.
func requestFailure(err error) error {
	var me *wire.Error
	if errors.As(err, &me) {
		return me
	}
	return &wire.Error{Kind: wire.KindBadRequest, Message: "reading the request body: " + err.Error(), Err: err}
}

// answerFailure is how a service's answer body that broke fails its
// stream: the service's failure.
func answerFailure(err error) error {
	return &wire.Error{Kind: wire.KindUpstream, Message: "reading the service's answer: " + err.Error(), Err: err}
}

var (
	_ io.ReadCloser = (*streamBody)(nil)
	_ io.WriterTo   = (*streamBody)(nil)
)

// streamBody is a pipeline.Stream as an HTTP body (io.ReadCloser): each
// piece read as Next gives it, under ctx. At the stream's end, onEOF is
// given its trailer (to fill the Trailer map of the request or response
// the body is of) before Read returns io.EOF; Close closes the stream
// (before its end: cancels it) and calls onClose, once.
type streamBody struct {
	ctx     context.Context
	s       pipeline.Stream
	onEOF   func(nats.Header) error
	onClose func()

	piece []byte
	err   error
	once  sync.Once
}

// next makes the next piece current, or b.err final.
func (b *streamBody) next() {
	piece, err := b.s.Next(b.ctx)
	switch {
	case errors.Is(err, io.EOF):
		b.err = io.EOF
		if b.onEOF != nil {
			if err := b.onEOF(b.s.Trailer()); err != nil {
				b.err = err
			}
		}
	case err != nil:
		b.err = err
	}
	b.piece = piece
}

func (b *streamBody) Read(p []byte) (int, error) {
	for len(b.piece) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.next()
	}
	n := copy(p, b.piece)
	b.piece = b.piece[n:]
	return n, nil
}

// WriteTo writes each piece to w as it comes, without copying it first.
func (b *streamBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(b.piece) == 0 {
			if b.err == io.EOF {
				return total, nil
			}
			if b.err != nil {
				return total, b.err
			}
			b.next()
		}
		n, err := w.Write(b.piece)
		total += int64(n)
		b.piece = b.piece[n:]
		if err != nil {
			return total, err
		}
	}
}

func (b *streamBody) Close() error {
	var err error
	b.once.Do(func() {
		err = b.s.Close()
		if b.onClose != nil {
			b.onClose()
		}
	})
	return err
}

// fillTrailer sets the fields of t, a stream's trailer as
// httpwire.ReadTrailer reads it, in dst, the Trailer map of the request or
// answer whose body the stream is: a declared field gets its value, an
// undeclared one is added.
func fillTrailer(dst, t http.Header) {
	for k, vs := range t {
		dst[k] = vs
	}
}
