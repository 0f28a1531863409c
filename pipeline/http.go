package pipeline

import (
	"context"
	"net/http"

	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// NewHTTPCall encodes r (its body read and closed here, bounded by lim) as
// the call dest describes: dest's Service and Subset (wire.NormalSubset),
// or Subject, and Caller; the protocol, operation, path and message are
// set from r. It
// fails with the *wire.Error of [httpwire.EncodeRequest].
func NewHTTPCall(r *http.Request, dest Call, lim wire.Limits) (*Call, error) {
	m, err := httpwire.EncodeRequest(r, lim)
	if err != nil {
		return nil, err
	}
	c := dest
	c.Subset = wire.NormalSubset(c.Subset)
	c.Proto, c.Op, c.Header, c.Body = wire.ProtoHTTP, r.Method, m.Header, Body{Bytes: m.Data}
	c.Path = m.Header.Get(wire.HeaderPath)
	return &c, nil
}

// SendHTTP sends c through s and decodes the reply. Mesh failures come back
// as *wire.Error. A streamed reply is read whole (up to the max_payload of
// s's connection, when s is an [Outbound], else wire's default), until the
// stream protocol (issue 18) lets it reach the client as it arrives.
func SendHTTP(ctx context.Context, s Sender, c *Call) (*http.Response, error) {
	reply, err := s.Send(ctx, c)
	if err != nil {
		return nil, err
	}
	m := reply.Msg()
	if reply.Streamed() {
		lim := wire.Limits{}
		if o, ok := s.(*Outbound); ok {
			lim = o.Limits()
		}
		if m, err = reply.ReadWhole(ctx, lim.PayloadLimit()); err != nil {
			return nil, err
		}
	}
	return httpwire.DecodeResponse(m)
}

// CallerDeadline returns ctx with the deadline the client of r asked for in
// its Mesh-Timeout request header ([wire.RequestTimeout]), when it set one,
// for the HTTP entry points. The deadline only ever shortens ctx's, and the
// Outbound pipeline bounds it by its MaxTimeout (and a route's timeout,
// once policies apply one). A malformed value fails with bad-request.
func CallerDeadline(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc, error) {
	d, err := wire.RequestTimeout(r.Header)
	if err != nil {
		return ctx, func() {}, err
	}
	if d == 0 {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, nil
}
