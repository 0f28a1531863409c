package meshhttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// A protocol upgrade (WebSocket, RFC 6455; any Upgrade but h2c, which
// HTTP/2 ends at the listener) crosses the mesh as one call whose bodies
// are streams both ways, full duplex:
//
//   - the Proxy sends the upgrade request at once, its Upgrade in
//     Mesh-Upgrade (httpwire.HeaderUpgrade), its body a [tunnel]: the
//     bytes the client sends once the service has switched protocols;
//   - the callee's Upstream sends the request to the service, which
//     answers 101 and its connection (net/http gives it as the
//     response's Body, an io.ReadWriteCloser); the Upstream writes the
//     tunnel's bytes to it and answers a streamed 101 whose body is the
//     service's bytes;
//   - the Proxy takes over the client's connection (http.Hijacker),
//     writes the 101 and its headers, and copies both ways until either
//     side ends.
//
// An answer other than 101 is an answer like any other, and the tunnel
// ends empty.

var _ pipeline.Stream = (*tunnel)(nil)

// tunnel is the body of an upgrade request: the client's bytes once the
// service has switched protocols, read from the client's connection,
// which the Proxy takes over only then. Until then Next waits; an answer
// other than 101 ends it empty (refuse).
type tunnel struct {
	ready     chan struct{} // closed by start, refuse or Close
	readyOnce sync.Once
	// r and conn are set by start before ready is closed.
	r    io.Reader
	conn net.Conn

	buf     []byte
	pending error
	closed  atomic.Bool
	eof     atomic.Bool
}

func newTunnel() *tunnel { return &tunnel{ready: make(chan struct{})} }

// start makes the tunnel read r, the client's connection conn after the
// 101 (r holds what the server read of it already).
func (t *tunnel) start(r io.Reader, conn net.Conn) {
	t.readyOnce.Do(func() {
		t.r, t.conn = r, conn
		close(t.ready)
	})
}

// refuse ends the tunnel empty: the service did not switch protocols.
func (t *tunnel) refuse() { t.readyOnce.Do(func() { close(t.ready) }) }

// started reports whether the tunnel reads a connection.
func (t *tunnel) started() bool {
	select {
	case <-t.ready:
		return t.r != nil
	default:
		return false
	}
}

func (t *tunnel) Next(ctx context.Context) ([]byte, error) {
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, wire.FromError(ctx.Err())
	}
	switch {
	case t.closed.Load():
		return nil, errStreamClosed
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
		t.buf = make([]byte, pieceSize)
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
				err = errStreamClosed
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

func (t *tunnel) Trailer() nats.Header { return nil }

// Close ends the tunnel: a read of the client's connection in progress
// returns (the connection itself is the Proxy's to close).
func (t *tunnel) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.refuse()
	if t.conn != nil && !t.eof.Load() {
		t.conn.SetReadDeadline(aLongTimeAgo)
	}
	return nil
}

// switchProtocols carries an upgraded call: it takes over the client's
// connection, writes the service's 101 and its headers, starts the
// tunnel (the client's bytes to the service), and copies the service's
// bytes to the client until they end; then it closes the connection,
// which ends the tunnel. Its error is the one that ended the call
// early: a connection that cannot be taken over (HTTP/2; t not started,
// and nothing written), or the mesh error that cut the stream.
func (p *Proxy) switchProtocols(w http.ResponseWriter, resp *http.Response, t *tunnel) error {
	defer resp.Body.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.refuse()
		return wire.Errorf(wire.KindNotImplemented, "protocol upgrade (Upgrade: %.32q) on a connection that cannot be taken over (HTTP/2): use HTTP/1.1", resp.Header.Get("Upgrade"))
	}
	defer conn.Close()
	// The server's deadlines bound a request, not the connection it
	// becomes.
	conn.SetDeadline(time.Time{})
	resp.Header.Del("Content-Length")
	if err := writeSwitch(brw.Writer, resp); err != nil {
		t.refuse()
		p.log().Debug("meshhttp: writing the 101", "err", err)
		return nil
	}
	t.start(brw.Reader, conn)
	if _, err := io.Copy(conn, resp.Body); err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return we
		}
		p.log().Debug("meshhttp: writing to an upgraded connection", "err", err)
	}
	return nil
}

// writeSwitch writes the head of a 101 answer to w and flushes it.
func writeSwitch(w *bufio.Writer, resp *http.Response) error {
	w.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(w)
	w.WriteString("\r\n")
	return w.Flush()
}
