package traffic

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// HeaderFault is set on a reply that an injected abort made, so that a
// person reading a trace or a response can tell it from the service's
// own: its value is "abort".
const HeaderFault = "X-Natsmesh-Fault"

// Faults returns the outbound middleware that injects the merged policy's
// faults (policies.Fault) of each call's service and route (as Routing set
// it) into each attempt it sees: first the delay, for its share of the
// attempts (one whose deadline passes during the delay fails with
// timeout), then the abort, for its share, without sending the attempt.
// An abort with an HTTP status returns a reply with that status (for a
// gRPC call, the status gRPC maps that HTTP status to); one with a mesh
// error kind returns that *wire.Error. Placed below the resilience
// policies (as package chain does), both look to them like a failure of
// the destination: a retry may recover an injected abort.
func Faults(cfg Config) pipeline.OutboundMiddleware {
	var res resolver
	return func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			f := cfg.current()
			if f == nil || c.Subject != "" {
				return next.Send(ctx, c)
			}
			route, _ := pipeline.RouteFrom(ctx)
			fault := res.resolve(f, c.Service, route).policy.Fault
			if fault == nil {
				return next.Send(ctx, c)
			}
			if d := fault.Delay; d != nil && chance(d.Percent.Fraction()) {
				if err := sleep(ctx, d.Duration.D()); err != nil {
					return nil, err
				}
			}
			if a := fault.Abort; a != nil && chance(a.Percent.Fraction()) {
				return abort(c, a)
			}
			return next.Send(ctx, c)
		})
	}
}

// sleep waits d, or fails with timeout when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &wire.Error{Kind: wire.KindTimeout, Message: "deadline passed during an injected delay", Err: ctx.Err()}
	}
}

// abort is the injected failure of c.
func abort(c *pipeline.Call, a *policies.FaultAbort) (*pipeline.Reply, error) {
	if a.Error != "" {
		return nil, &wire.Error{Kind: wire.Kind(a.Error), Message: "injected fault (abort)"}
	}
	var m *nats.Msg
	var err error
	if c.Proto == wire.ProtoGRPC {
		m, err = grpcwire.ResponseMsg(&grpcwire.Response{
			Header: map[string][]string{"x-natsmesh-fault": {"abort"}},
			Status: status.New(grpcCode(a.Status), "injected fault (abort "+strconv.Itoa(a.Status)+")"),
		}, wire.Limits{})
	} else {
		h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, HeaderFault: {"abort"}}
		m, err = httpwire.ResponseMsg(a.Status, h, []byte("injected fault (abort)\n"), nil, wire.Limits{})
	}
	if err != nil {
		return nil, err
	}
	return pipeline.ReplyFromMsg(c.Proto, m), nil
}

// grpcCode is the gRPC code of an HTTP status, as gRPC maps them
// (grpc-go's HTTP-to-gRPC status mapping).
func grpcCode(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	return codes.Unknown
}
