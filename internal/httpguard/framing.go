package httpguard

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/natsmesh/natsmesh/internal/headerbudget"
)

// Listen wraps l so that a server with [Handler] and [ConnContext] answers 400, and
// closes the connection, when a request's framing is ambiguous: both
// Content-Length and Transfer-Encoding, Transfer-Encoding in an HTTP/1.0
// request, or a folded header line (obs-fold).
//
// Go's HTTP server frames the first by Transfer-Encoding and deletes
// Content-Length, ignores Transfer-Encoding on HTTP/1.0, and joins a folded
// line to the one before it ("Transfer-Encoding:\r\n chunked" is chunked),
// before any handler sees the request, so the handler alone cannot tell.
// RFC 9112 section 6.1 says the first "ought to be handled as an error" and
// the second MUST be treated as faulty framing, and section 5.2 lets a
// server reject obs-fold with 400: all are classic request smuggling
// shapes. The guard follows the request heads as they are read from each
// connection, skipping bodies by their Content-Length, and notes which
// request on the connection was ambiguous. It only ever adds a refusal:
// Go's server still frames every request, and where the guard cannot
// follow (a chunked body, a head larger than it keeps) it stops watching,
// which leaves Go's own handling and the Connection: close that [Handler]
// sets after every chunked request.
//
// The connection also rewrites the answers Go's server writes on its own,
// before any handler runs (headers over MaxHeaderBytes, a malformed
// request, an unknown transfer coding), into the mesh's form with a
// Mesh-Error header, so every refusal of a mesh listener reads the same
// way whatever its size or cause.
//
// A connection that speaks HTTP/2 without TLS (h2c: it opens with the
// HTTP/2 preface, or sends it after switching with Upgrade: h2c) is
// followed up to the preface only: HTTP/2 has no Transfer-Encoding to
// smuggle with, and its frames no heads.
//
// TLS listeners are supported (Listen(tls.NewListener(l, cfg))): the
// guard sees the decrypted bytes and the request still reports its TLS
// state. Such connections speak HTTP/1.1 only, since Go's server offers
// HTTP/2 over TLS on *tls.Conn alone.
func Listen(l net.Listener) net.Listener { return guardListener{l} }

type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return &guardTLSConn{guardConn{Conn: c}, tc}, nil
	}
	return &guardConn{Conn: c}, nil
}

// maxGuardHead bounds the head the guard keeps; past it, it stops watching.
// keepGuardHead is the buffer it keeps between requests.
const (
	maxGuardHead  = 128 << 10
	keepGuardHead = 4 << 10
)

// guardConn follows the requests read through it. Reads of one connection
// are sequential (Go's server reads from one goroutine), so the parsing
// state needs no lock; what handlers read is atomic.
//
// A head that arrives whole in one read (the usual case) is checked where
// it lies, in the reader's buffer; only a head split across reads is
// copied, into head, until its end arrives.
type guardConn struct {
	net.Conn
	head     []byte // the part of a head split across reads, read so far
	scanned  int    // bytes of head already searched for its end
	bodyLeft int64
	stopped  bool

	heads  int64        // request heads seen, for ambig
	ambig  atomic.Int64 // ordinal of the ambiguous request, or 0
	served atomic.Int64 // requests that reached the handler
	// received is the ordinal of the last request whose body (of known
	// length, or none) has been read from the connection in full.
	received atomic.Int64
}

func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.stopped {
		c.observe(p[:n])
	}
	return n, err
}

// CloseWrite lets Go's server half-close the connection after an error
// answer, as it does on a *net.TCPConn.
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// observe follows the request stream: heads, then bodies of known length.
func (c *guardConn) observe(b []byte) {
	for len(b) > 0 && !c.stopped {
		if c.bodyLeft > 0 {
			skip := min(c.bodyLeft, int64(len(b)))
			c.bodyLeft -= skip
			b = b[skip:]
			if c.bodyLeft == 0 {
				c.received.Store(c.heads)
			}
			continue
		}
		if len(c.head) == 0 {
			// Empty lines before a request are skipped, as Go's server does.
			for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
				b = b[1:]
			}
			if len(b) == 0 {
				return
			}
			end, scanned, ok := headEnd(b, 0)
			if ok {
				c.heads++
				c.check(b[:end])
				b = b[end:]
				continue
			}
			// The head goes on in the next read: keep what came.
			c.scanned = scanned
		}
		prev := len(c.head)
		c.head = append(c.head, b...)
		end, scanned, ok := headEnd(c.head, c.scanned)
		if !ok {
			c.scanned = scanned
			if len(c.head) > maxGuardHead {
				c.stop()
			}
			return
		}
		c.heads++
		c.check(c.head[:end])
		// The head's last line ended in b (the part before had no end),
		// so the rest of the stream is the tail of b.
		b = b[end-prev:]
		if cap(c.head) > keepGuardHead {
			c.head = nil
		} else {
			c.head = c.head[:0]
		}
		c.scanned = 0
	}
}

// headEnd finds the end of the head in buf as Go's textproto reader does:
// line by line (a line ends at LF, a CR before it is dropped), up to the
// first empty line. It returns the index just past that line, or, when the
// head has no end yet, where the search is to resume once more has been
// read (the start of the last, incomplete line), so a head trickled in byte
// by byte costs linear time. The search starts at start, the beginning of
// a line.
func headEnd(buf []byte, start int) (end, resume int, ok bool) {
	for {
		nl := bytes.IndexByte(buf[start:], '\n')
		if nl < 0 {
			return 0, start, false
		}
		line := buf[start : start+nl]
		next := start + nl + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return next, 0, true
		}
		start = next
	}
}

// preface is the HTTP/2 client preface's first part, which reads as a
// head: a connection that opens with it (prior knowledge) or sends it after
// switching to HTTP/2 (Upgrade: h2c) speaks HTTP/2 from there on.
var preface = []byte("PRI * HTTP/2.0\r\n\r\n")

// check reads one head's framing and decides what follows it.
func (c *guardConn) check(head []byte) {
	if bytes.Equal(head, preface) {
		// HTTP/2 frames every message itself: nothing to smuggle with, and
		// no heads to follow. Read as HTTP/1 instead (not at the start of
		// a connection), the preface is refused and its connection closed.
		c.stop()
		return
	}
	var (
		cl           int64
		hasCL, hasTE bool
	)
	// The request line, then the header lines.
	line, head := nextLine(head)
	http10 := bytes.HasSuffix(bytes.TrimRight(line, "\r"), []byte("HTTP/1.0"))
	for len(head) > 0 {
		line, head = nextLine(head)
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A folded line continues the header before it and Go joins
			// them, while a proxy in front may not: refused, whatever it
			// continues (RFC 9112 section 5.2).
			c.ambig.Store(c.heads)
			c.stop()
			return
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if n, ok := parseLength(bytes.TrimSpace(value)); ok && !hasCL {
				cl = n
			}
			hasCL = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			hasTE = true
		}
	}
	switch {
	case hasTE && (hasCL || http10):
		c.ambig.Store(c.heads)
		c.stop() // the gateway answers 400 and closes
	case hasTE:
		c.stop() // a chunked body: the gateway closes the connection after it
	case hasCL && cl > 0:
		c.bodyLeft = cl
	default:
		c.received.Store(c.heads) // no body to wait for
	}
}

// nextLine splits b after its first LF: the line (without the LF) and the
// rest.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// parseLength reads a Content-Length value as strconv.ParseInt does (base
// 10, 64 bits) and reports whether it is one that is not negative: plain
// digits without a copy, anything else through ParseInt.
func parseLength(v []byte) (int64, bool) {
	if len(v) > 0 && len(v) <= 18 {
		var n int64
		digits := true
		for _, d := range v {
			if d < '0' || d > '9' {
				digits = false
				break
			}
			n = n*10 + int64(d-'0')
		}
		if digits {
			return n, true
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil && n >= 0
}

func (c *guardConn) stop() {
	c.stopped = true
	c.head = nil
}

// guardTLSConn is a guarded TLS connection. Go's server reads the TLS state
// of a connection that is not a *tls.Conn once, before its first request,
// through ConnectionState: so that the handshake has happened by then, it
// completes it there.
type guardTLSConn struct {
	guardConn
	tls *tls.Conn
}

// tlsHandshakeTimeout bounds the handshake ConnectionState completes.
const tlsHandshakeTimeout = 10 * time.Second

func (c *guardTLSConn) ConnectionState() tls.ConnectionState {
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	defer cancel()
	// A failed handshake fails the server's first read as well.
	c.tls.HandshakeContext(ctx)
	return c.tls.ConnectionState()
}

type guardKey struct{}

// ConnContext is the http.Server ConnContext that lets handlers find the
// guard of their connection, and gives the connection its budget of held
// headers (internal/headerbudget).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	// The connection's budget of held headers, for HTTP/2's many
	// requests at once (Handler, and meshgrpc.Proxy for gRPC).
	ctx = headerbudget.NewContext(ctx)
	switch g := c.(type) {
	case *guardConn:
		return context.WithValue(ctx, guardKey{}, g)
	case *guardTLSConn:
		return context.WithValue(ctx, guardKey{}, &g.guardConn)
	}
	return ctx
}

// Ambiguous counts a request reaching the handler on its connection
// and reports whether it is the one the guard found ambiguous. Go's server
// serves an HTTP/1.x connection's requests one after another, in order, and
// closes the connection after any request it refuses itself, so the n-th
// request a handler sees is the n-th head the guard read. Call it exactly
// once per request.
func Ambiguous(ctx context.Context) bool {
	g, n := serving(ctx)
	return g != nil && n == g.ambig.Load()
}

// serving counts a request reaching the handler and returns the guard of
// its connection (nil for none) and the request's ordinal on it.
func serving(ctx context.Context) (*guardConn, int64) {
	g, ok := ctx.Value(guardKey{}).(*guardConn)
	if !ok {
		return nil, 0
	}
	return g, g.served.Add(1)
}

// bodyReceived reports whether the body of request n on g's connection
// has been read from the connection in full already: no read of it can
// stall.
func bodyReceived(g *guardConn, n int64) bool {
	return g != nil && g.received.Load() >= n
}
