package httpguard

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http/httpguts"

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
//   - an h2c upgrade (Upgrade: h2c) is answered 501 not-implemented:
//     HTTP/2 ends at the listener, not at the service, and sending it on
//     as a plain request would hide that; other upgrades (WebSocket) are
//     the handler's to carry (meshhttp.Proxy);
//   - the body's bytes must keep coming: a wait of Options.BodyTimeout
//     for them fails the read with a request-timeout mesh error, which
//     the mesh's handlers answer 408.
func Handler(h http.Handler, o Options) http.Handler {
	if o.BodyTimeout == 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, n := serving(r.Context())
		if g != nil && n == g.ambig.Load() {
			w.Header().Set("Connection", "close")
			httpwire.WriteError(w, wire.Errorf(wire.KindBadRequest, "ambiguous framing: Transfer-Encoding with Content-Length or in HTTP/1.0, or a folded header line"))
			return
		}
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		if up := r.Header.Get("Upgrade"); up != "" && httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c") {
			w.Header().Set("Connection", "close")
			httpwire.WriteError(w, wire.Errorf(wire.KindNotImplemented,
				"protocol upgrade (Upgrade: %.32q) is not carried by the mesh yet: send a plain HTTP/1.1 request, or gRPC to the gRPC proxy", up))
			return
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
