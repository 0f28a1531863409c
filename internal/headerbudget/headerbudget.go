package headerbudget

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc/peer"
)

// Max is a connection's budget: 16 header lists at the mesh's limit
// (64 KiB), or some hundreds of ordinary ones.
const Max = 1 << 20

// fieldOverhead is what HTTP/2 counts for a header field beside its name
// and value (RFC 9113 section 6.5.2).
const fieldOverhead = 32

// Budget is one connection's budget of held header bytes. Its methods are
// safe for concurrent use.
type Budget struct {
	held atomic.Int64
	max  int64
}

// New is a budget of max bytes.
func New(max int64) *Budget { return &Budget{max: max} }

// Take takes n bytes and reports whether they were within the budget;
// when they were not, it takes nothing.
func (b *Budget) Take(n int64) bool {
	if b.held.Add(n) > b.max {
		b.held.Add(-n)
		return false
	}
	return true
}

// Give gives back n bytes taken; on a nil Budget it does nothing.
func (b *Budget) Give(n int64) {
	if b != nil {
		b.held.Add(-n)
	}
}

// Held is the bytes held now.
func (b *Budget) Held() int64 { return b.held.Load() }

type key struct{}

// NewContext is ctx with a new budget of Max bytes, for an http.Server's
// ConnContext: the requests of the connection share it.
func NewContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, New(Max))
}

// Hold takes n bytes from the budget of ctx's connection and returns
// it, for the caller to Give them back when the request's handler
// returns; ok is false, and nothing taken, when they are not within it.
// A context without a budget holds nothing: it returns a nil Budget, whose
// Give does nothing, and true.
func Hold(ctx context.Context, n int64) (b *Budget, ok bool) {
	b, _ = ctx.Value(key{}).(*Budget)
	if b == nil {
		if p, ok := peer.FromContext(ctx); ok {
			if a, ok := p.Addr.(addr); ok {
				b = a.b
			}
		}
	}
	if b == nil {
		return nil, true
	}
	if !b.Take(n) {
		return nil, false
	}
	return b, true
}

// Size is what HTTP/2 counts for header fields h (an http.Header or a
// gRPC metadata.MD) and pseudo-header values pseudo: each field's name
// and value and 32 bytes.
func Size(h map[string][]string, pseudo ...string) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(v) + fieldOverhead)
		}
	}
	for _, p := range pseudo {
		n += int64(len(":authority") + len(p) + fieldOverhead) // the longest pseudo-header's name
	}
	return n
}

// RequestSize is Size of r's header and pseudo-headers (its path and
// query counted as they were decoded, which is no longer than sent).
func RequestSize(r *http.Request) int64 {
	return Size(r.Header, r.Method, "http", r.Host, r.URL.Path) + int64(len(r.URL.RawQuery))
}

// Listen wraps l so that each connection it accepts has a budget, for a
// grpc.Server serving l: grpc-go tells a handler nothing of its
// connection but the peer's address (peer.FromContext), so the budget
// rides in the connection's RemoteAddr, a net.Addr that says the same.
// (A stats.Handler could put it in the context instead, at some twenty
// allocations a call.) A grpc.Server behind ServeHTTP needs none: its
// requests' contexts have their HTTP/2 connection's budget (NewContext).
func Listen(l net.Listener) net.Listener { return listener{l} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, addr: addr{Addr: c.RemoteAddr(), b: New(Max)}}, nil
}

type conn struct {
	net.Conn
	addr addr
}

func (c *conn) RemoteAddr() net.Addr { return c.addr }

// addr is a connection's remote address with its budget.
type addr struct {
	net.Addr
	b *Budget
}
