package httpwire

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/natsmesh/natsmesh/wire"
)

// WriteError answers an HTTP client with err as a mesh error: the kind's
// status, a Mesh-Error header naming the kind (so clients can tell the mesh's
// answers from the service's), Retry-After where set, and a one-line text body.
func WriteError(w http.ResponseWriter, err error) {
	e := meshError(err)
	setErrorHeader(w.Header(), e)
	w.WriteHeader(e.HTTPStatus())
	fmt.Fprintln(w, e.Error())
}

// ErrorResponse is the response WriteError writes, for callers that
// return responses instead of writing them (an http.RoundTripper).
func ErrorResponse(err error) *http.Response {
	e := meshError(err)
	body := []byte(e.Error() + "\n")
	h := make(http.Header, 5)
	setErrorHeader(h, e)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return newResponse(e.HTTPStatus(), h, nil, body, int64(len(body)))
}

func meshError(err error) *wire.Error {
	if e := wire.FromError(err); e != nil {
		return e
	}
	return &wire.Error{Kind: wire.KindInternal, Message: "an HTTP error answer without an error"}
}

func setErrorHeader(h http.Header, e *wire.Error) {
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(wire.HeaderError, string(e.Kind))
	if e.RetryAfter > 0 {
		h.Set(wire.HeaderRetryAfter, e.RetryAfterHeader())
	}
}
