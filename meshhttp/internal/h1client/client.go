package h1client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Client is an http.RoundTripper for plain HTTP/1.1 to local services
// (see the package doc). The zero value needs Fallback.
type Client struct {
	// Fallback makes the round trips a Client does not (TLS, streamed
	// bodies, upgrades; every one when it has a Proxy, disables
	// keep-alives, compresses: the gzip it adds and undoes itself, or
	// sets MaxConnsPerHost, ResponseHeaderTimeout, Dial or unencrypted
	// HTTP/2: see lends),
	// and lends the Client its DialContext (default: a net.Dialer's),
	// MaxIdleConnsPerHost (default 2, as net/http's), IdleConnTimeout
	// (0: none) and MaxResponseHeaderBytes (default 10 MB, as
	// net/http's). Required.
	Fallback *http.Transport

	mu       sync.Mutex
	idle     map[string][]*conn // by host:port, the last one put the first taken
	sweeping bool               // a sweep of the connections idle too long is due (sweep)
}

var _ http.RoundTripper = (*Client)(nil)

// conn is a kept-alive connection and its buffers.
type conn struct {
	net.Conn
	host string
	lr   *io.LimitedReader // under br: bounds an answer's head
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it was last put idle
}

// aLongTimeAgo is a deadline passed: set on a connection, it ends a read
// or write in progress.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper.
func (c *Client) RoundTrip(r *http.Request) (*http.Response, error) {
	if !plain(r) || !lends(c.Fallback) {
		return c.Fallback.RoundTrip(r)
	}
	orig := r
	for attempt := 0; ; attempt++ {
		cn, reused, err := c.get(r.Context(), hostPort(r.URL))
		if err != nil {
			// The body is closed whatever the failure, as
			// http.RoundTripper requires (Write closes it otherwise).
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, err
		}
		resp, err := c.roundTrip(cn, r)
		if err == nil {
			resp.Request = orig
			return resp, nil
		}
		var e *noAnswer
		if reused && attempt == 0 && errors.As(err, &e) && idempotent(r) && r.Context().Err() == nil {
			// The server closed the connection as the request went out
			// (an idle timeout): net/http's Transport sends such a
			// request again; only one that may run twice.
			if r.Body != nil && r.Body != http.NoBody {
				body, err := r.GetBody()
				if err != nil {
					return nil, err
				}
				// A copy: a RoundTripper leaves its caller's request
				// as it is (TestRetryLeavesRequest).
				r = r.WithContext(r.Context())
				r.Body = body
			}
			continue
		}
		if errors.As(err, &e) {
			err = e.err
		}
		return nil, err
	}
}

// unflushed is a connection's writer that Request.Write does not flush
// by itself. Given a *bufio.Writer, it flushes the head before a body it
// does not know to be in memory (net/http knows only bytes and strings
// readers; the mesh's decoded bodies are neither): two writes a call,
// and two reads for the service. A Client's bodies are whole, so the
// head can wait for them: roundTrip flushes once, after the body. Being
// an io.ByteWriter, it is not wrapped in a bufio.Writer of its own.
type unflushed struct{ *bufio.Writer }

// noAnswer is a failure before any byte of the answer came.
type noAnswer struct{ err error }

func (e *noAnswer) Error() string { return e.err.Error() }
func (e *noAnswer) Unwrap() error { return e.err }

// roundTrip writes r on cn and reads its answer, whose body gives cn
// back once read to its end and closed.
func (c *Client) roundTrip(cn *conn, r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	var stop func() bool
	if ctx.Done() != nil {
		// The call given up (its deadline, its caller gone) ends a write
		// or read in progress, the body's too.
		stop = context.AfterFunc(ctx, func() { cn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		if stop != nil {
			stop()
		}
		cn.Close()
		if ctx.Err() != nil {
			// The deadline, as net/http's Transport reports it.
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := r.Write(unflushed{cn.bw}); err != nil {
		return fail(&noAnswer{err})
	}
	if err := cn.bw.Flush(); err != nil {
		return fail(&noAnswer{err})
	}
	var resp *http.Response
	for informational := 0; ; informational++ {
		// The head is bounded as net/http's Transport bounds it; the
		// body, by its reader.
		cn.lr.N = c.maxHeaderBytes()
		if _, err := cn.br.Peek(1); err != nil {
			return fail(&noAnswer{err})
		}
		var err error
		resp, err = http.ReadResponse(cn.br, r)
		if cn.lr.N <= 0 {
			return fail(fmt.Errorf("h1client: the answer's head exceeds %d bytes", c.maxHeaderBytes()))
		}
		if err != nil {
			return fail(err)
		}
		cn.lr.N = math.MaxInt64
		// 1xx answers but 101 precede the final one (net/http's
		// Transport skips them too, at most 5, and fails at the sixth).
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if informational == 5 {
			return fail(errors.New("h1client: too many 1xx informational responses"))
		}
	}
	// After an answer below 200 (a 101) the connection carries no other:
	// a final answer may still come on it.
	keep := !resp.Close && !r.Close && resp.StatusCode >= 200
	b := &body{ReadCloser: resp.Body, c: c, cn: cn, keep: keep, stop: stop}
	if resp.Body == http.NoBody {
		// An answer without a body (HEAD, 204, 304, a length of 0) is
		// read to its end already: closed unread, as meshhttp closes a
		// HEAD's, it gives its connection back.
		b.eof.Store(true)
	}
	resp.Body = b
	return resp, nil
}

// body is an answer's body, which gives its connection back to the
// Client once read to its end and closed, and closes it when closed
// before.
type body struct {
	io.ReadCloser
	c    *Client
	cn   *conn
	keep bool
	stop func() bool
	eof  atomic.Bool
	done atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *body) Close() error {
	if b.done.Swap(true) {
		return nil
	}
	if b.stop != nil && !b.stop() {
		// The call was given up: the deadline has been set.
		b.keep = false
	}
	if !b.keep || !b.eof.Load() {
		// Closed before its end: net/http's body would read the rest
		// first (an endless stream, never); the connection goes.
		b.cn.Close()
		b.ReadCloser.Close()
		return nil
	}
	err := b.ReadCloser.Close()
	if err == nil {
		b.c.put(b.cn)
	} else {
		b.cn.Close()
	}
	return err
}

// get is an idle connection to host, alive, or a new one.
func (c *Client) get(ctx context.Context, host string) (cn *conn, reused bool, err error) {
	c.mu.Lock()
	for list := c.idle[host]; len(list) > 0; list = c.idle[host] {
		cn = list[len(list)-1]
		list[len(list)-1] = nil
		c.idle[host] = list[:len(list)-1]
		if t := c.Fallback.IdleConnTimeout; t > 0 && time.Since(cn.used) > t {
			cn.Close()
			continue
		}
		c.mu.Unlock()
		if quiet(cn.Conn) {
			return cn, true, nil
		}
		cn.Close()
		c.mu.Lock()
	}
	c.mu.Unlock()
	dial := c.Fallback.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	lr := &io.LimitedReader{R: nc, N: math.MaxInt64}
	return &conn{Conn: nc, host: host, lr: lr, br: bufio.NewReader(lr), bw: bufio.NewWriter(nc)}, false, nil
}

// maxHeaderBytes bounds the head of an answer (Fallback's
// MaxResponseHeaderBytes).
func (c *Client) maxHeaderBytes() int64 {
	if n := c.Fallback.MaxResponseHeaderBytes; n > 0 {
		return n
	}
	return 10 << 20
}

// put keeps cn for the next request to its host, or closes it.
func (c *Client) put(cn *conn) {
	max := c.Fallback.MaxIdleConnsPerHost
	if max <= 0 {
		max = http.DefaultMaxIdleConnsPerHost
	}
	cn.used = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[cn.host]) >= max || cn.br.Buffered() > 0 {
		cn.Close()
		return
	}
	if c.idle == nil {
		c.idle = make(map[string][]*conn)
	}
	c.idle[cn.host] = append(c.idle[cn.host], cn)
	if t := c.Fallback.IdleConnTimeout; t > 0 && !c.sweeping {
		c.sweeping = true
		time.AfterFunc(t, c.sweep)
	}
}

// sweep closes the connections idle for IdleConnTimeout, as net/http's
// Transport does, and comes again while any is idle. get looks only at
// those it takes, the last put first: under a load of fewer calls at
// once than connections kept, those put first would stay open for
// ever (TestIdleConnTimeoutCloses).
func (c *Client) sweep() {
	t := c.Fallback.IdleConnTimeout
	var old []*conn
	var next time.Duration
	c.mu.Lock()
	now := time.Now()
	for host, list := range c.idle {
		// The list is in the order put: the oldest first.
		i := 0
		for i < len(list) && now.Sub(list[i].used) >= t {
			i++
		}
		old = append(old, list[:i]...)
		n := copy(list, list[i:])
		clear(list[n:])
		if list = list[:n]; n == 0 {
			delete(c.idle, host)
			continue
		}
		c.idle[host] = list
		if wait := t - now.Sub(list[0].used); next == 0 || wait < next {
			next = max(wait, time.Millisecond)
		}
	}
	c.sweeping = next > 0
	c.mu.Unlock()
	if next > 0 {
		time.AfterFunc(next, c.sweep)
	}
	for _, cn := range old {
		cn.Close()
	}
}

// CloseIdleConnections closes the connections kept alive, the
// Fallback's too.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, list := range idle {
		for _, cn := range list {
			cn.Close()
		}
	}
	c.Fallback.CloseIdleConnections()
}

// lends reports whether t leaves its plain requests to a Client: it
// sets nothing that a Client would not do as t does. A Proxy, no
// keep-alives, compression (the gzip it asks for and undoes), a bound
// on a host's connections, a wait for an answer's head, the deprecated
// Dial, HTTP/2 without TLS: with any, t makes them all, or what it
// is set to do would be dropped silently (TestFallbackSettingsHonored).
func lends(t *http.Transport) bool {
	return t.Proxy == nil && !t.DisableKeepAlives && t.DisableCompression && t.MaxConnsPerHost <= 0 &&
		t.ResponseHeaderTimeout <= 0 && t.Dial == nil && (t.Protocols == nil || !t.Protocols.UnencryptedHTTP2())
}

// hostPort is the address u's server is dialed at: its host and port,
// port 80 when it names none, as net/http's Transport dials it
// (TestDefaultPort).
func hostPort(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}

// plain reports whether r takes the Client's own path.
func plain(r *http.Request) bool {
	if r.URL.Scheme != "http" || r.URL.Host == "" || len(r.Trailer) > 0 || len(r.TransferEncoding) > 0 || r.Header.Get("Upgrade") != "" || r.Header.Get("Expect") != "" {
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || (r.ContentLength > 0 && r.ContentLength <= MaxBody && r.GetBody != nil)
}

// MaxBody is the largest request body a Client writes itself: one that
// fits in the sockets' buffers (on loopback, Linux's start at 128 KiB
// for the receiver alone), so its write ends whether or not the service
// reads it. A larger one goes to Fallback, which writes it while it
// waits for the answer: a service may answer (a 413) without reading
// the body, and a Client, which reads the answer only once the body is
// written, would wait for the call's deadline instead
// (TestEarlyAnswerToLargeBody). The mesh's whole bodies are at most
// 64 KiB (meshhttp.WholeBodyMax).
const MaxBody = 64 << 10

// idempotent reports whether r may be sent twice (RFC 9110 section
// 9.2.2, as net/http's Transport reads it).
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
