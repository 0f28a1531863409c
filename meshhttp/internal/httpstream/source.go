package httpstream

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// PieceSize is the most a [Source] or a [Tunnel] reads at once: io.Copy's
// buffer.
const PieceSize = 32 << 10

var _ pipeline.Stream = (*Source)(nil)

// Source is an HTTP body as a pipeline.Stream: read in pieces, its
// trailer taken at its end.
type Source struct {
	// R is the body. Required.
	R io.ReadCloser
	// TrailerOf, when set, is the trailer once the body has ended (an
	// HTTP body's Trailer map is complete when its Read returns io.EOF).
	TrailerOf func() nats.Header
	// Fail makes a failed read the stream's error, a *wire.Error of the
	// side that broke. Required.
	Fail func(error) error
	// Unblock, when set, ends a Read in progress before Close closes the
	// body: a server's request body waits for its client, and its Close
	// waits for that Read (net/http's body holds a lock across both).
	Unblock func()

	buf     []byte
	pending error // an error that came with the last piece
	t       nats.Header
	eof     atomic.Bool
	closed  atomic.Bool
	once    sync.Once
}

func (s *Source) Next(ctx context.Context) ([]byte, error) {
	if s.eof.Load() {
		return nil, io.EOF
	}
	if s.closed.Load() {
		return nil, ErrClosed
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
		s.buf = make([]byte, PieceSize)
	}
	for {
		n, err := s.R.Read(s.buf)
		if err != nil && err != io.EOF && ctx.Err() != nil {
			return nil, wire.FromError(ctx.Err())
		}
		switch {
		case err == io.EOF:
			if s.TrailerOf != nil {
				s.t = s.TrailerOf()
			}
			s.eof.Store(true)
			if n == 0 {
				return nil, io.EOF
			}
		case err != nil:
			err = s.Fail(err)
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

func (s *Source) Trailer() nats.Header { return s.t }

func (s *Source) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		if s.Unblock != nil && !s.eof.Load() {
			s.Unblock()
		}
		err = s.R.Close()
	})
	return err
}

// ErrClosed is what a stream's Next returns once it is closed.
var ErrClosed = &wire.Error{Kind: wire.KindTimeout, Message: "the stream was closed", Err: context.Canceled}
