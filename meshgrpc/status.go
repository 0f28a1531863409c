package meshgrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// streamFailure is the status a gRPC peer sees for a stream that failed
// under ctx: ctx's own end (Canceled, DeadlineExceeded) when it has
// ended, else err's status ([grpcwire.Status]).
func streamFailure(ctx context.Context, err error) *status.Status {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err())
	}
	return grpcwire.Status(err)
}

// handlerStatus is the status of a handler's error: its status, a
// context error's code, else Unknown; nil for nil.
func handlerStatus(err error) *status.Status {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if cs := status.FromContextError(err); cs.Code() != codes.Unknown {
			st = cs
		}
	}
	return st
}

// tooLarge reports whether err is a message too large for max_payload.
func tooLarge(err error) bool {
	var e *wire.Error
	return errors.As(err, &e) && e.Kind == wire.KindTooLarge
}
