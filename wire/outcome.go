package wire

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/grpc/codes"
)

// HeaderGRPCStatus is the gRPC status code of a service's answer to a
// gRPC call, as a decimal number (package wire/grpcwire writes it). Its
// presence marks a reply as a gRPC service's own answer.
const HeaderGRPCStatus = "Mesh-Grpc-Status"

// Outcome is how a call ended, read once from its reply or its error by
// the one rule of whether a service failed ([Outcome.ServerFailed]). What
// the metrics, passive health and the retry policies make of it differs
// only where each of them must, and each difference is written here, as a
// method of its own: [Outcome.CountsAsError] (metrics),
// [Outcome.PassiveHealth] (outlier detection), [Outcome.DestinationFailed]
// (the caller's circuit breaker), [Outcome.Retry] and [Outcome.EndsHedge]
// (the retry and hedge policies).
type Outcome struct {
	// Proto is the protocol Code is in.
	Proto Proto
	// Code is what the client sees: the HTTP status for ProtoHTTP, the
	// gRPC code for ProtoGRPC; for a mesh error, its [Error.HTTPStatus] or
	// [Error.GRPCCode].
	Code int
	// Err is the mesh error the call ended with, nil for a service's own
	// answer.
	Err *Error
}

// OutcomeOf reads the outcome of a call of proto that ended with reply or
// err ([FromError]: any error is a mesh error) as its client sees it, as
// the codecs read a reply: a gRPC answer by its Mesh-Grpc-Status (a
// malformed one reads as INTERNAL, the error its client gets), an HTTP
// answer by its Mesh-Status; without it, a NATS-native answer, which a
// nats.go/micro error (Nats-Service-Error headers) makes
// [MicroGRPCCode] or [MicroHTTPStatus], and anything else a success. With
// proto "" (a reader that sees no call) a reply with Mesh-Grpc-Status
// reads as gRPC, any other as HTTP.
func OutcomeOf(proto Proto, reply *nats.Msg, err error) Outcome {
	if err != nil {
		e := FromError(err)
		if proto == ProtoGRPC {
			return Outcome{Proto: ProtoGRPC, Code: int(e.GRPCCode()), Err: e}
		}
		return Outcome{Proto: ProtoHTTP, Code: e.HTTPStatus(), Err: e}
	}
	var h nats.Header
	if reply != nil {
		h = reply.Header
	}
	return AnswerOutcome(proto, h)
}

// AnswerOutcome is the outcome of a service's answer to a call of proto
// whose status headers are h (a reply's header), read as [OutcomeOf]
// reads a reply: the one place the mesh reads a status from the wire's
// headers. A stream's trailer, which may carry its final status, is read
// by [Outcome.WithTrailer].
func AnswerOutcome(proto Proto, h nats.Header) Outcome {
	grpcStatus := h.Get(HeaderGRPCStatus)
	if proto == "" && grpcStatus != "" {
		proto = ProtoGRPC
	}
	if proto == ProtoGRPC {
		switch {
		case grpcStatus != "":
			n, perr := strconv.ParseUint(grpcStatus, 10, 32)
			if perr != nil {
				// A gRPC client gets an internal error for it.
				n = uint64(codes.Internal)
			}
			return Outcome{Proto: ProtoGRPC, Code: int(min(n, 1<<31-1))}
		case microError(h):
			return Outcome{Proto: ProtoGRPC, Code: int(MicroGRPCCode(h.Get(micro.ErrorCodeHeader)))}
		}
		return Outcome{Proto: ProtoGRPC, Code: int(codes.OK)}
	}
	// A status outside 100-999 makes no HTTP answer: the codec reads such
	// a reply as a NATS-native one, and so does this.
	if s, perr := strconv.Atoi(h.Get(HeaderStatus)); perr == nil && s >= 100 && s <= 999 {
		return Outcome{Proto: ProtoHTTP, Code: s}
	}
	if microError(h) {
		return Outcome{Proto: ProtoHTTP, Code: MicroHTTPStatus(h.Get(micro.ErrorCodeHeader))}
	}
	return Outcome{Proto: ProtoHTTP, Code: http.StatusOK}
}

// WithTrailer is the outcome of a streamed answer whose header made o,
// once its trailer has come: a gRPC stream's final status travels in its
// trailer (Mesh-Grpc-Status, as in a unary reply's header) and replaces
// the one its header had (none, read as OK, unless the answer was
// trailers-only); an HTTP answer's status is its header's, whatever its
// trailer says. A mesh error stays as it is.
func (o Outcome) WithTrailer(trailer nats.Header) Outcome {
	if o.Err != nil || o.Proto != ProtoGRPC || trailer.Get(HeaderGRPCStatus) == "" {
		return o
	}
	return AnswerOutcome(ProtoGRPC, trailer)
}

// microError reports whether h is a nats.go/micro error answer's.
func microError(h nats.Header) bool {
	return h.Get(micro.ErrorHeader) != "" || h.Get(micro.ErrorCodeHeader) != ""
}

// ServerFailed is the one rule: whether the service answered, and its
// answer says it failed. An HTTP status of 500 or more does, and so does a
// gRPC code that gRPC's mapping to HTTP (grpc-gateway's) makes one: UNKNOWN,
// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS,
// the codes OpenTelemetry's RPC conventions count as server errors. The
// other codes, like HTTP's 4xx, are the caller's. A mesh error is no
// answer: false.
func (o Outcome) ServerFailed() bool {
	if o.Err != nil {
		return false
	}
	if o.Proto == ProtoGRPC {
		switch codes.Code(o.Code) {
		case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
			return true
		}
		return false
	}
	return o.Code >= 500
}

// Two kinds of server failure that say something else than "this instance
// is broken", which the variants below treat apart.

// notImplemented: the service does not have what was asked (HTTP 501,
// gRPC UNIMPLEMENTED). Every instance would answer the same.
func (o Outcome) notImplemented() bool {
	if o.Proto == ProtoGRPC {
		return codes.Code(o.Code) == codes.Unimplemented
	}
	return o.Code == http.StatusNotImplemented
}

// deadlineExceeded: the service ran out of time (HTTP 504, gRPC
// DEADLINE_EXCEEDED). A gRPC service called under the caller's deadline
// answers this when that deadline passes (grpc-go's client says so).
func (o Outcome) deadlineExceeded() bool {
	if o.Proto == ProtoGRPC {
		return codes.Code(o.Code) == codes.DeadlineExceeded
	}
	return o.Code == http.StatusGatewayTimeout
}

// CountsAsError is the metrics' variant (error counters, spans, access
// logs, discovery's last error): every mesh error, and every answer that
// [Outcome.ServerFailed].
func (o Outcome) CountsAsError() bool { return o.Err != nil || o.ServerFailed() }

// Verdict is what an outcome tells outlier detection of the instance that
// served it.
type Verdict int8

const (
	// Neither: no evidence either way.
	Neither Verdict = iota
	// Succeeded: the instance works.
	Succeeded
	// Failed: the instance failed.
	Failed
)

// PassiveHealth is the variant of outlier detection, which judges the
// instance that served a call from the answer of its local service. An
// answer that [Outcome.ServerFailed] fails it, except one that blames the
// call rather than the instance: not implemented (501, UNIMPLEMENTED), or
// out of time (504, DEADLINE_EXCEEDED, as a timeout is), which count as
// neither. Other answers succeed. Of the mesh errors, failing to reach the
// local service (upstream-unavailable, upstream-refused) or a failure
// inside it (internal: an in-process handler's panic) fail it; the others
// (a timeout, a refusal by the mesh before the service) count as neither.
func (o Outcome) PassiveHealth() Verdict {
	if o.Err != nil {
		switch o.Err.Kind {
		case KindUpstream, KindUpstreamRefused, KindInternal:
			return Failed
		}
		return Neither
	}
	switch {
	case o.notImplemented(), o.deadlineExceeded():
		return Neither
	case o.ServerFailed():
		return Failed
	}
	return Succeeded
}

// DestinationFailed is the variant of the caller's circuit breaker, which
// judges a destination (a queue group): an answer that
// [Outcome.ServerFailed] counts against it, except not implemented (501,
// UNIMPLEMENTED: a working destination without that method); of the mesh
// errors, those that say the destination is bad: a timeout, its agent
// unable to reach or refused by its local service, no instance serving.
// One whose cause is a cancelled context is a call given up, and does not
// count. The caller's own refusals, 4xx answers and forbidden do not.
func (o Outcome) DestinationFailed() bool {
	if o.Err == nil {
		return o.ServerFailed() && !o.notImplemented()
	}
	switch o.Err.Kind {
	case KindTimeout, KindUpstream, KindUpstreamRefused, KindNoResponders:
		return !errors.Is(o.Err.Err, context.Canceled)
	}
	return false
}

// Retry says when the retry policy may repeat an attempt.
type Retry int8

const (
	// RetryNever: an answer, or a failure that must not be repeated.
	RetryNever Retry = iota
	// RetryAlways: nothing ran (no-responders, overloaded,
	// upstream-refused, broker-unavailable): safe for any call.
	RetryAlways
	// RetryIdempotent: the service may have run the call (a timeout, a
	// server failure worth another try): only for an idempotent call.
	RetryIdempotent
)

// Retry is the variant of the retry policy. Nothing ran: always. A
// timeout: when idempotent. An answer that [Outcome.ServerFailed]: when
// idempotent, for HTTP any but 501 (every instance would answer it again)
// and for gRPC UNAVAILABLE only (gRPC's own retry policy's usual choice:
// the other codes say the method ran and failed). Anything else: never.
// The caller's own refusals (its breaker, its bulkhead) look like a
// remote's circuit-open and overloaded here; the policy tells them apart
// before it asks.
func (o Outcome) Retry() Retry {
	if o.Err != nil {
		switch o.Err.Kind {
		case KindNoResponders, KindOverloaded, KindUpstreamRefused, KindBrokerUnavailable, KindNoMeshFile:
			return RetryAlways
		case KindTimeout, KindConnectionLost, KindUpstream:
			// It may have run: again only where running twice is
			// harmless (docs/wire.md's table), as a service's own 502.
			return RetryIdempotent
		}
		return RetryNever
	}
	if !o.ServerFailed() || o.notImplemented() {
		return RetryNever
	}
	if o.Proto == ProtoGRPC && codes.Code(o.Code) != codes.Unavailable {
		return RetryNever
	}
	return RetryIdempotent
}

// EndsHedge is the variant of the hedge policy: an answer that ends a
// hedged call at once, cancelling its other attempts. Any answer that is
// not a server failure does, and so does not implemented (501,
// UNIMPLEMENTED), which another instance would only repeat; a mesh error
// or another server failure waits for the other attempts.
func (o Outcome) EndsHedge() bool {
	return o.Err == nil && (!o.ServerFailed() || o.notImplemented())
}

// MicroHTTPStatus is the HTTP status of a nats.go/micro error answer whose
// Nats-Service-Error-Code is code: 400 to 599 as it is, anything else 500.
func MicroHTTPStatus(code string) int {
	c, err := strconv.Atoi(code)
	if err != nil || c < 400 || c > 599 {
		return http.StatusInternalServerError
	}
	return c
}

// MicroGRPCCode is the gRPC code of a nats.go/micro error answer whose
// Nats-Service-Error-Code is code, by gRPC's mapping of HTTP statuses:
// 400 Internal, 401 Unauthenticated, 403 PermissionDenied, 404
// Unimplemented, 429, 502, 503 and 504 Unavailable, anything else Unknown.
func MicroGRPCCode(code string) codes.Code {
	c, _ := strconv.Atoi(code)
	switch c {
	case 400:
		return codes.Internal
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.Unimplemented
	case 429, 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Unknown
}
