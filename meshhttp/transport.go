package meshhttp

import (
	"errors"
	"net/http"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Transport is an http.RoundTripper that sends requests over the mesh,
// through Sender, in process: the outbound entry point of a client in the
// same process as its agent (http.Client{Transport: t}). It takes the
// steps of [Proxy] but the rewrite (a client makes its requests as they
// are to be sent), and answers as the proxy does: a mesh failure is a
// response (a 503 with a Mesh-Error header, and so on), so that code
// behaves the same through the sidecar's proxy and in process; only a
// request that cannot be read at all (no URL) is an error.
//
// Streams (issue 18): a request body of unknown length or over
// [WholeBodyMax] is sent as it comes (replayable by the request's GetBody),
// and a streamed answer is the response's body, read as it arrives, its
// Trailer filled at its end; closing it before its end cancels the call.
// A protocol upgrade is not carried in process: the request is sent
// without it.
type Transport struct {
	// Sender sends the calls: the outbound pipeline. Required.
	Sender pipeline.Sender
	// Caller is the calling service's name, the caller of every call.
	Caller string
	// Resolve returns the destination of a request, as [Proxy.Resolve]
	// does. Default (nil): the URL's host (http://orders/v1/items,
	// http://v2.orders/ for a subset), else Host, read by
	// [wire.ParseHost] with Domains.
	Resolve func(*http.Request) (pipeline.Call, error)
	// Domains are the mesh domains the default Resolve accepts after a
	// service name.
	Domains []string
	// Limits, read per request, bound the call; nil as for [Proxy].
	Limits pipeline.Limits
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil {
		closeBody(r)
		return nil, errors.New("meshhttp: request has no URL")
	}
	resp, err := t.roundTrip(r)
	if err != nil {
		resp = httpwire.ErrorResponse(err)
	}
	resp.Request = r
	return resp, nil
}

func (t *Transport) roundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodConnect {
		closeBody(r)
		return nil, errConnect
	}
	if t.Sender == nil {
		closeBody(r)
		return nil, wire.Errorf(wire.KindInternal, "meshhttp: Transport.Sender is nil")
	}
	d, err := (&Proxy{Resolve: t.Resolve, Domains: t.Domains}).resolve(r)
	if err != nil {
		closeBody(r)
		return nil, err
	}
	d.Caller = t.Caller
	return roundTrip(t.Sender, r, d, limitsNow(t.Limits, t.Sender), nil, nil)
}
