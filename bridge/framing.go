package bridge

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync/atomic"
)

// GuardFraming wraps l so that a [Gateway] served on it can answer 400 to a
// request that carries both Content-Length and Transfer-Encoding.
//
// Go's HTTP server frames such a request by Transfer-Encoding and deletes
// Content-Length before any handler sees it (RFC 9112 section 6.3 allows
// that), so the handler alone cannot tell it from a plain chunked request.
// RFC 9112 section 6.1 says such a message "ought to be handled as an
// error": it is the classic request smuggling shape. The guard watches the
// request heads as they are read from each connection, skipping bodies by
// their Content-Length, and marks the connection when a head has both
// fields. It only ever adds a refusal: it does not frame requests (Go's
// server still does), and where it cannot follow (a head larger than it
// keeps, a chunked body) it stops watching, which leaves Go's own handling
// and the gateway's Connection: close after every chunked request.
//
// With TLS, wrap the TLS listener (GuardFraming(tls.NewListener(l, cfg))):
// the guard must see the decrypted bytes. Such connections speak HTTP/1.1
// only, since Go's server offers HTTP/2 on *tls.Conn alone; HTTP/2 has no
// Transfer-Encoding to smuggle with.
func GuardFraming(l net.Listener) net.Listener { return guardListener{l} }

type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c}, nil
}

// maxGuardHead bounds the head the guard keeps; past it, it stops watching.
const maxGuardHead = 128 << 10

// guardConn records, as a request head with both Content-Length and
// Transfer-Encoding passes through Read, that this connection carried one.
type guardConn struct {
	net.Conn
	head     []byte
	bodyLeft int64
	stopped  bool
	ambig    atomic.Bool
}

func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.stopped {
		c.observe(p[:n])
	}
	return n, err
}

// observe follows the request stream: heads, then bodies of known length.
// Reads of one connection are sequential, so it needs no lock.
func (c *guardConn) observe(b []byte) {
	for len(b) > 0 && !c.stopped {
		if c.bodyLeft > 0 {
			skip := min(c.bodyLeft, int64(len(b)))
			c.bodyLeft -= skip
			b = b[skip:]
			continue
		}
		if len(c.head) == 0 {
			// Empty lines between requests are skipped, as Go's server does.
			for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
				b = b[1:]
			}
			if len(b) == 0 {
				return
			}
		}
		c.head = append(c.head, b...)
		end, sep := headEnd(c.head)
		if end < 0 {
			if len(c.head) > maxGuardHead {
				c.stop()
			}
			return
		}
		rest := c.head[end+sep:]
		cl, hasCL, hasTE := framingFields(c.head[:end])
		switch {
		case hasTE && hasCL:
			c.ambig.Store(true)
			c.stop()
			return
		case hasTE:
			// A chunked body: the gateway closes the connection after it,
			// so there is no next head to watch.
			c.stop()
			return
		case hasCL:
			c.bodyLeft = cl
		}
		// What followed the head (body, next request) goes round again; it
		// must not alias c.head, which is reset.
		b = append([]byte(nil), rest...)
		c.head = c.head[:0]
	}
}

func (c *guardConn) stop() {
	c.stopped = true
	c.head = nil
}

// headEnd finds the blank line that ends a head: the index where it starts
// and the length of the separator, or -1.
func headEnd(b []byte) (int, int) {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i, 4
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return i, 2
	}
	return -1, 0
}

// framingFields reads Content-Length and Transfer-Encoding from a head.
func framingFields(head []byte) (cl int64, hasCL, hasTE bool) {
	lines := bytes.Split(head, []byte("\n"))
	for _, line := range lines[1:] { // the first is the request line
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\r"), []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64); err == nil && n >= 0 && !hasCL {
				cl = n
			}
			hasCL = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			hasTE = true
		}
	}
	return cl, hasCL, hasTE
}

type guardKey struct{}

// guardContext is the http.Server ConnContext that lets handlers find the
// guard of their connection.
func guardContext(ctx context.Context, c net.Conn) context.Context {
	if g, ok := c.(*guardConn); ok {
		return context.WithValue(ctx, guardKey{}, g)
	}
	return ctx
}

// ambiguousFraming reports whether the request served under ctx came with
// both Content-Length and Transfer-Encoding.
func ambiguousFraming(ctx context.Context) bool {
	g, ok := ctx.Value(guardKey{}).(*guardConn)
	return ok && g.ambig.Load()
}
