package meshstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// Body is one direction's body of a stream as its receiver reads it:
// pipeline.Stream's shape (Next, Trailer after io.EOF, Close). Reading it
// grants the sender credit back; Close before its end cancels the stream
// (the peer is told), after it releases it.
type Body struct {
	c *conn
	// first is a piece that came with the head frame.
	first []byte
	// onEOF is called when the body has been read to its end.
	onEOF func()
	// keepOnClose: closing the body before its end does not end the
	// stream (the callee's request body: a service that stops reading
	// it, or whose client closes it on a failed write, still answers,
	// and its answer ends the call).
	keepOnClose bool
	// maxWait, when set, bounds each wait for the next frame.
	maxWait time.Duration

	mu      sync.Mutex
	trailer nats.Header
	eof     bool
	closed  bool
	last    int // bytes of the piece last returned, credited at the next call
}

func newBody(c *conn, first []byte) *Body {
	if len(first) == 0 {
		first = nil
	}
	return &Body{c: c, first: first}
}

// Next returns the next piece of the body, io.EOF after the last, or the
// mesh error the stream failed with.
func (b *Body) Next(ctx context.Context) ([]byte, error) {
	b.mu.Lock()
	if b.eof {
		b.mu.Unlock()
		return nil, io.EOF
	}
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	last := b.last
	b.last = 0
	b.mu.Unlock()
	if last > 0 {
		b.c.read(last)
	}
	if b.first != nil {
		p := b.first
		b.first = nil
		b.mu.Lock()
		b.last = len(p)
		b.mu.Unlock()
		return p, nil
	}
	if b.maxWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, b.maxWait, &wire.Error{Kind: wire.KindRequestTimeout,
			Message: fmt.Sprintf("the caller sent no body for %v", b.maxWait)})
		defer cancel()
	}
	for {
		m, err := b.c.next(ctx)
		if err != nil {
			if cause := context.Cause(ctx); b.maxWait > 0 && cause != nil && ctx.Err() == context.DeadlineExceeded {
				var e *wire.Error
				if errors.As(cause, &e) {
					b.c.fail(e, true)
					return nil, e
				}
			}
			return nil, err
		}
		switch wire.FrameOf(m.Header) {
		case wire.FrameData:
			if len(m.Data) == 0 {
				continue
			}
			b.mu.Lock()
			b.last = len(m.Data)
			b.mu.Unlock()
			return m.Data, nil
		case wire.FrameEnd:
			if len(m.Data) > 0 {
				e := wire.Errorf(wire.KindBadRequest, "stream: an end frame with data")
				b.c.fail(e, true)
				return nil, e
			}
			b.mu.Lock()
			b.eof = true
			b.trailer = trailerOf(m.Header)
			b.mu.Unlock()
			if b.onEOF != nil {
				b.onEOF()
			}
			return nil, io.EOF
		default:
			e := wire.Errorf(wire.KindBadRequest, "stream: a %s frame in a body", wire.FrameOf(m.Header))
			b.c.fail(e, true)
			return nil, e
		}
	}
}

// Trailer is what the end frame carried: its header less the frame's own
// fields. Valid once Next has returned io.EOF.
func (b *Body) Trailer() nats.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trailer
}

// Close ends the body: before its end it cancels the stream.
func (b *Body) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	eof := b.eof
	b.mu.Unlock()
	if !eof && !b.keepOnClose {
		b.c.fail(errClosed, true)
	}
	return nil
}

// trailerOf is an end frame's header less the frame's own fields; nil for
// none.
func trailerOf(h nats.Header) nats.Header {
	var t nats.Header
	for k, v := range h {
		if k == wire.HeaderFrame || k == wire.HeaderSeq {
			continue
		}
		if t == nil {
			t = make(nats.Header, len(h))
		}
		t[k] = v
	}
	return t
}
