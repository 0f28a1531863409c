package meshhttp

import (
	"errors"
	"net/http"

	"github.com/natsmesh/natsmesh/wire"
)

// WholeBodyMax is the largest body that crosses the mesh whole, in the
// call's one message, when its length is known up front: a request's from
// its Content-Length, an answer's once the service has written it. Larger
// bodies, and bodies of unknown length (chunked), are streams
// (pipeline.Stream), sent in pieces as they arrive. A whole request body
// is replayable (a retry, a hedge, a mirror reads it again) at the cost of
// holding it; 64 KiB keeps that cost small. Under a max_payload below
// twice this, half of max_payload is the bound, the rest left for the
// headers.
const WholeBodyMax = 64 << 10

// wholeLimit is the largest body sent whole under lim ([WholeBodyMax]).
func wholeLimit(lim wire.Limits) int64 { return min(WholeBodyMax, lim.PayloadLimit()/2) }

// requestFailure is how a client's request body that broke fails its
// stream: the listener's own verdict (a body that stalled:
// request-timeout) stands, anything else is a broken request.
func requestFailure(err error) error {
	var me *wire.Error
	if errors.As(err, &me) {
		return me
	}
	return &wire.Error{Kind: wire.KindBadRequest, Message: "reading the request body: " + err.Error(), Err: err}
}

// answerFailure is how a service's answer body that broke fails its
// stream: the service's failure.
func answerFailure(err error) error {
	return &wire.Error{Kind: wire.KindUpstream, Message: "reading the service's answer: " + err.Error(), Err: err}
}

// fillTrailer sets the fields of t, a stream's trailer as
// httpwire.ReadTrailer reads it, in dst, the Trailer map of the request or
// answer whose body the stream is: a declared field gets its value, an
// undeclared one is added.
func fillTrailer(dst, t http.Header) {
	for k, vs := range t {
		dst[k] = vs
	}
}
