package meshhttp

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("time.Sleep"))
}

// received is the call the inbound dispatch makes of m, from the caller
// "test".
func received(m *nats.Msg) *pipeline.Call {
	return &pipeline.Call{Caller: "test", Proto: wire.ProtoHTTP, Header: m.Header, Body: pipeline.Body{Bytes: m.Data}}
}

// serveHTTPMsg serves m with h as the in-process HTTP kind does and returns
// the reply the dispatch would send.
func serveHTTPMsg(ctx context.Context, h http.Handler, m *nats.Msg, lim wire.Limits) *nats.Msg {
	// The deadline, as the dispatch sets it from Mesh-Timeout.
	if d, err := wire.Timeout(m.Header); err == nil && d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	reply, err := (&Handler{Handler: h, Limits: func() wire.Limits { return lim }}).ServeCall(ctx, received(m))
	if err != nil {
		return wire.ErrorMsg(wire.FromError(err))
	}
	if reply.Streamed() {
		// As the inbound dispatch sends a streamed reply until the
		// stream protocol: whole, up to max_payload.
		whole, err := reply.ReadWhole(ctx, lim.PayloadLimit())
		if err != nil {
			return wire.ErrorMsg(wire.FromError(wire.ResponseError(err)))
		}
		return whole
	}
	return reply.Msg()
}

// encodeHTTPAt is the request message r makes on subject, with the
// Mesh-Timeout of r's deadline, as the outbound pipeline sends it.
func encodeHTTPAt(r *http.Request, subject string, lim wire.Limits) (*nats.Msg, error) {
	m, err := httpwire.EncodeRequest(r, lim)
	if err != nil {
		return nil, err
	}
	m.Subject = subject
	if d, ok := r.Context().Deadline(); ok {
		wire.SetTimeout(m.Header, time.Until(d))
	}
	return m, nil
}
