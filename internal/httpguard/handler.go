package httpguard

import (
	"net/http"

	"github.com/natsmesh/natsmesh/wire"
)

// Handler wraps h for a server that serves on [Listen] with [ConnContext]:
//
//   - a request whose framing was ambiguous (both Content-Length and
//     Transfer-Encoding, or Transfer-Encoding on HTTP/1.0) is answered 400
//     bad-request and its connection closed;
//   - after any chunked request the connection is closed (RFC 9112 section
//     6.1), since a proxy in front that framed it by Content-Length would
//     disagree with us about where the next request starts.
func Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Ambiguous(r.Context()) {
			w.Header().Set("Connection", "close")
			wire.WriteHTTPError(w, wire.Errorf(wire.KindBadRequest, "ambiguous framing: Transfer-Encoding with Content-Length or in HTTP/1.0"))
			return
		}
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
