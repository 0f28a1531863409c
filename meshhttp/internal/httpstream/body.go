package httpstream

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
)

var (
	_ io.ReadCloser = (*Body)(nil)
	_ io.WriterTo   = (*Body)(nil)
)

// Body is a pipeline.Stream as an HTTP body (io.ReadCloser): each piece
// read as Next gives it, under Ctx. At the stream's end, OnEOF is given
// its trailer (to fill the Trailer map of the request or response the
// body is of) before Read returns io.EOF, and an error it returns is the
// body's; Close closes the stream (before its end: cancels it) and calls
// OnClose, once.
type Body struct {
	// Ctx bounds each read of the stream: the call's context, which
	// lasts until the body is closed.
	Ctx     context.Context
	S       pipeline.Stream
	OnEOF   func(nats.Header) error
	OnClose func()

	piece []byte
	err   error
	once  sync.Once
}

// next makes the next piece current, or b.err final.
func (b *Body) next() {
	piece, err := b.S.Next(b.Ctx)
	switch {
	case errors.Is(err, io.EOF):
		b.err = io.EOF
		if b.OnEOF != nil {
			if err := b.OnEOF(b.S.Trailer()); err != nil {
				b.err = err
			}
		}
	case err != nil:
		b.err = err
	}
	b.piece = piece
}

func (b *Body) Read(p []byte) (int, error) {
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
func (b *Body) WriteTo(w io.Writer) (int64, error) {
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

func (b *Body) Close() error {
	var err error
	b.once.Do(func() {
		err = b.S.Close()
		if b.OnClose != nil {
			b.OnClose()
		}
	})
	return err
}
