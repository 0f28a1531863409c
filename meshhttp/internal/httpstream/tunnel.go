package httpstream

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

var _ pipeline.Stream = (*Tunnel)(nil)

// Tunnel is the body of an upgrade request: the client's bytes once the
// service has switched protocols, read from the client's connection,
// which the caller's side takes over only then. Until then Next waits;
// an answer other than 101 ends it empty (Refuse).
type Tunnel struct {
	ready     chan struct{} // closed by Start, Refuse or Close
	readyOnce sync.Once
	// r and conn are set by Start before ready is closed.
	r    io.Reader
	conn net.Conn

	buf     []byte
	pending error
	closed  atomic.Bool
	eof     atomic.Bool
}

// NewTunnel is a tunnel that waits for its connection.
func NewTunnel() *Tunnel { return &Tunnel{ready: make(chan struct{})} }

// Start makes the tunnel read r, the client's connection conn after the
// 101 (r holds what the server read of it already).
func (t *Tunnel) Start(r io.Reader, conn net.Conn) {
	t.readyOnce.Do(func() {
		t.r, t.conn = r, conn
		close(t.ready)
	})
}

// Refuse ends the tunnel empty: the service did not switch protocols.
func (t *Tunnel) Refuse() { t.readyOnce.Do(func() { close(t.ready) }) }

// Started reports whether the tunnel reads a connection.
func (t *Tunnel) Started() bool {
	select {
	case <-t.ready:
		return t.r != nil
	default:
		return false
	}
}

func (t *Tunnel) Next(ctx context.Context) ([]byte, error) {
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, wire.FromError(ctx.Err())
	}
	switch {
	case t.closed.Load():
		return nil, ErrClosed
	case t.r == nil, t.eof.Load():
		return nil, io.EOF
	case t.pending != nil:
		return nil, t.pending
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { t.Close() })
		defer stop()
	}
	if t.buf == nil {
		t.buf = make([]byte, PieceSize)
	}
	for {
		n, err := t.r.Read(t.buf)
		switch {
		case err == io.EOF:
			t.eof.Store(true)
			if n == 0 {
				return nil, io.EOF
			}
		case err != nil:
			if t.closed.Load() {
				err = ErrClosed
			} else {
				err = &wire.Error{Kind: wire.KindBadRequest, Message: "reading the client's connection: " + err.Error(), Err: err}
			}
			if n == 0 {
				return nil, err
			}
			t.pending = err
		case n == 0:
			continue
		}
		return t.buf[:n], nil
	}
}

func (t *Tunnel) Trailer() nats.Header { return nil }

// Close ends the tunnel: a read of the client's connection in progress
// returns (the connection itself is its taker's to close).
func (t *Tunnel) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.Refuse()
	if t.conn != nil && !t.eof.Load() {
		t.conn.SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

// Pump writes the call's body stream to w, a connection once switched,
// until the stream ends or the call does (ctx); a failure closes w, and
// so ends the reply too. At the stream's end w stays, for its peer's
// last bytes: the protocol (WebSocket's close handshake) ends it.
func Pump(ctx context.Context, in pipeline.Stream, w io.WriteCloser) {
	for {
		b, err := in.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.Close()
			}
			return
		}
		if _, err := w.Write(b); err != nil {
			w.Close()
			return
		}
	}
}
