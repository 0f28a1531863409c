package httpguard

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/headerbudget"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Options are the settings of [Handler]. The zero value uses the defaults.
type Options struct {
	// BodyTimeout bounds each wait for a request body's bytes: a read of
	// the body that gets nothing for that long fails with a
	// request-timeout mesh error (408). It is a bound between bytes, not
	// on the whole body (nginx's client_body_timeout), since bodies are
	// streamed and may be as long as their client sends; the time the
	// mesh takes between reads (a stream waiting for its receiver) does
	// not count. Zero means DefaultBodyTimeout; negative means no bound.
	BodyTimeout time.Duration
	// H2C, when set, switches the connections whose requests ask for
	// HTTP/2 without TLS (Upgrade: h2c) to it, and the requests it does not
	// switch are served over HTTP/1.1 (see h2c.Server.Upgrade). Nil
	// answers them 501 like any other upgrade.
	H2C *h2c.Server
}

// DefaultBodyTimeout is the default of Options.BodyTimeout: a client
// that has sent nothing for 10 s while its body is awaited is stalled, not
// slow.
const DefaultBodyTimeout = 10 * time.Second

// Handler wraps h for a server that serves on [Listen] with [ConnContext]:
//
//   - a request whose framing was ambiguous (both Content-Length and
//     Transfer-Encoding, Transfer-Encoding on HTTP/1.0, a folded header
//     line) is answered 400 bad-request and its connection closed;
//   - after any chunked request the connection is closed (RFC 9112 section
//     6.1), since a proxy in front that framed it by Content-Length would
//     disagree with us about where the next request starts;
//   - a request that asks to switch to HTTP/2 (Upgrade: h2c) goes to
//     Options.H2C, which switches its connection or leaves it to be
//     served over HTTP/1.1;
//   - without Options.H2C, such a request is answered 501
//     not-implemented: HTTP/2 ends at the listener, not at the service,
//     and sending it on as a plain request would hide that; any other
//     protocol upgrade (Upgrade: websocket) is the handler's to carry
//     (meshhttp.Proxy);
//   - the HTTP/2 preface read as a request (PRI *: not at the start of a
//     connection, or not whole) is answered 400 bad-request and its
//     connection closed;
//   - the body's bytes must keep coming: a wait of Options.BodyTimeout
//     for them fails the read with a request-timeout mesh error, which
//     the mesh's handlers answer 408.
//
// A request over HTTP/2 (prior knowledge, or an upgraded connection) has
// its body bounded the same way and nothing else to refuse but headers
// past its connection's budget (internal/headerbudget: 431
// headers-too-large): HTTP/2 frames every message itself, and its servers
// refuse the connection-specific headers (Transfer-Encoding, Upgrade) as
// malformed.
func Handler(h http.Handler, o Options) http.Handler {
	if o.BodyTimeout == 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			g *guardConn
			n int64
		)
		// Go's HTTP/1 server reads the HTTP/2 preface as a request of
		// version 2.0, "PRI *"; every other request of version 2 came
		// over HTTP/2, which the guard does not follow.
		if r.ProtoMajor == 1 || r.Method == "PRI" {
			g, n = serving(r.Context())
			if refuseHTTP1(w, r, g, n, o.H2C) {
				return
			}
		}
		if r.ProtoMajor == 2 {
			// One of the requests an HTTP/2 connection may have open at
			// once: their headers share the connection's budget.
			size := headerbudget.RequestSize(r)
			budget, ok := headerbudget.Hold(r.Context(), size)
			if !ok {
				httpwire.WriteError(w, wire.Errorf(wire.KindHeadersTooLarge, "the requests open on this connection hold over %d bytes of headers", headerbudget.Max))
				return
			}
			defer budget.Give(size)
		}
		// A body that has arrived whole (the guard followed it by its
		// Content-Length) cannot stall: no deadline to set and clear.
		if o.BodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody && !bodyReceived(g, n) {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Time{}); err == nil {
				// On a copy: Go's server inspects its own request's Body
				// (a *http.body) after the handler to decide whether the
				// connection may be reused.
				r = r.WithContext(r.Context())
				r.Body = &timedBody{ReadCloser: r.Body, rc: rc, timeout: o.BodyTimeout}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// refuseHTTP1 answers, and reports so, a request read by Go's HTTP/1
// server that the guard refuses (see [Handler]), or switches its
// connection to HTTP/2 through up; request n of its connection, whose
// guard is g (nil for none).
func refuseHTTP1(w http.ResponseWriter, r *http.Request, g *guardConn, n int64, up *h2c.Server) bool {
	switch upgrade := r.Header.Get("Upgrade"); {
	case g != nil && n == g.ambig.Load():
		w.Header().Set("Connection", "close")
		httpwire.WriteError(w, wire.Errorf(wire.KindBadRequest, "ambiguous framing: Transfer-Encoding with Content-Length or in HTTP/1.0, or a folded header line"))
		return true
	case r.Method == "PRI":
		w.Header().Set("Connection", "close")
		httpwire.WriteError(w, wire.Errorf(wire.KindBadRequest,
			"the HTTP/2 preface where an HTTP/1.1 request was expected: it opens a connection, or follows the 101 that answers Upgrade: h2c"))
		return true
	case upgrade != "" && up != nil && h2c.IsUpgrade(r):
		if up.Upgrade(w, r) {
			return true
		}
		// Not switched (a body, say): served over HTTP/1.1, the Upgrade
		// header dropped as hop-by-hop.
	case upgrade != "" && up == nil && httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c"):
		w.Header().Set("Connection", "close")
		httpwire.WriteError(w, wire.Errorf(wire.KindNotImplemented,
			"protocol upgrade (Upgrade: %.32q) is not carried by the mesh yet: send a plain HTTP/1.1 or HTTP/2 request, or gRPC to the gRPC proxy", upgrade))
		return true
	}
	if len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
	return false
}

// timedBody is a request body each read of which waits under a deadline
// on its connection, set as the read starts. At the body's end it clears
// the deadline again: Go's server then waits on the connection in the
// background (to notice the client going away), and a deadline passing
// there would cancel the request's context while the call is still in
// flight; between reads too the connection has none (the server's
// ReadTimeout, for a whole request, is cleared above), so a stream that
// waits for its receiver is no stalled client.
type timedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	if !b.done {
		b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.ReadCloser.Read(p)
	if !b.done && err == nil {
		b.rc.SetReadDeadline(time.Time{})
	}
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	// On a timeout the deadline stays passed: Go's server then gives up
	// reading the rest of the body at once, answers, and closes the
	// connection.
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return n, &wire.Error{Kind: wire.KindRequestTimeout,
			Message: fmt.Sprintf("request body not received within %v", b.timeout), Err: err}
	}
	return n, err
}
