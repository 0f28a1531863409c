package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
)

// ErrInvalidName is wrapped by every error about a malformed name or subject.
var ErrInvalidName = errors.New("invalid name")

// Kind says which failure of the mesh an [Error] is. Kinds travel in the
// Mesh-Error header, so their strings are part of the wire format.
type Kind string

const (
	// KindNoResponders: no instance of the service subscribes (none running,
	// or all withdrawn by failing health checks). Safe to retry.
	KindNoResponders Kind = "no-responders"
	// KindTimeout: the deadline passed before a reply came.
	KindTimeout Kind = "timeout"
	// KindCircuitOpen: the caller's circuit breaker for the destination is open.
	KindCircuitOpen Kind = "circuit-open"
	// KindOverloaded: an instance refused the call before processing it
	// (concurrency limit). Safe to retry elsewhere.
	KindOverloaded Kind = "overloaded"
	// KindRateLimited: a rate limit refused the call before processing it.
	KindRateLimited Kind = "rate-limited"
	// KindForbidden: the caller may not call this destination.
	KindForbidden Kind = "forbidden"
	// KindTooLarge: the message exceeds the broker's max_payload.
	KindTooLarge Kind = "too-large"
	// KindHeadersTooLarge: too many headers, or too many header bytes.
	KindHeadersTooLarge Kind = "headers-too-large"
	// KindBadRequest: the request cannot be converted (malformed framing,
	// invalid names, unsupported feature).
	KindBadRequest Kind = "bad-request"
	// KindNoRoute: the gateway or proxy has no service for this request.
	KindNoRoute Kind = "no-route"
	// KindRequestTimeout: the client did not send its whole request (the
	// body) in time, so nothing was sent on.
	KindRequestTimeout Kind = "request-timeout"
	// KindNotImplemented: the request needs something the mesh does not
	// carry yet (a protocol upgrade such as WebSocket, a stream).
	KindNotImplemented Kind = "not-implemented"
	// KindUpstream: the receiving agent could not reach its local service.
	KindUpstream Kind = "upstream-unavailable"
	// KindUpstreamRefused: the receiving agent's local service refused the
	// connection (it is not running), so nothing ran. Safe to retry
	// elsewhere.
	KindUpstreamRefused Kind = "upstream-refused"
	// KindBrokerUnavailable: the sending agent has no connection to the
	// broker (it is reconnecting, or closed), so nothing was sent. Safe to
	// retry.
	KindBrokerUnavailable Kind = "broker-unavailable"
	// KindNoMeshFile: the agent or gateway that answers authenticates to
	// its broker and holds no mesh file yet (the store has none, or cannot
	// be reached, and none was kept on disk), so it serves nothing rather
	// than the built-in allow-all policy. Nothing ran: safe to retry.
	KindNoMeshFile Kind = "no-mesh-file"
	// KindConnectionLost: the connection to the broker was lost or closed
	// after the request was sent and before its reply came, so the call may
	// have run. Retry only idempotent calls.
	KindConnectionLost Kind = "connection-lost"
	// KindEgressDenied: the caller's agent refused a call to a host
	// outside the mesh that the mesh file does not allow (egress.mode
	// registry_only and the host not under egress.hosts). Nothing was
	// sent.
	KindEgressDenied Kind = "egress-denied"
	// KindInternal: a bug or an unexpected failure inside the mesh.
	KindInternal Kind = "internal"
)

// Error is a failure made by the mesh, as distinct from a service's own
// answer (which is never an Error, whatever its status). It maps to an HTTP
// status and a gRPC code, and is matched with errors.Is against the sentinel
// of its kind (errors.Is(err, bridge.ErrTimeout)).
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter, when positive, tells the caller when to try again (HTTP
	// Retry-After). Set on overloaded and rate-limited answers.
	RetryAfter time.Duration
	// Err is the underlying cause, if any; it is not sent over the wire.
	Err error
}

// Sentinels, one per kind, for errors.Is.
var (
	ErrNoResponders    = &Error{Kind: KindNoResponders}
	ErrTimeout         = &Error{Kind: KindTimeout}
	ErrCircuitOpen     = &Error{Kind: KindCircuitOpen}
	ErrOverloaded      = &Error{Kind: KindOverloaded}
	ErrRateLimited     = &Error{Kind: KindRateLimited}
	ErrForbidden       = &Error{Kind: KindForbidden}
	ErrTooLarge        = &Error{Kind: KindTooLarge}
	ErrHeadersTooLarge = &Error{Kind: KindHeadersTooLarge}
	ErrBadRequest      = &Error{Kind: KindBadRequest}
	ErrNoRoute         = &Error{Kind: KindNoRoute}
	ErrRequestTimeout  = &Error{Kind: KindRequestTimeout}
	ErrNotImplemented  = &Error{Kind: KindNotImplemented}
	ErrUpstream        = &Error{Kind: KindUpstream}
	ErrInternal        = &Error{Kind: KindInternal}
	ErrEgressDenied    = &Error{Kind: KindEgressDenied}

	ErrBrokerUnavailable = &Error{Kind: KindBrokerUnavailable}
	ErrUpstreamRefused   = &Error{Kind: KindUpstreamRefused}
	ErrConnectionLost    = &Error{Kind: KindConnectionLost}
	ErrNoMeshFile        = &Error{Kind: KindNoMeshFile}
)

// Errorf returns a mesh error of kind k.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "natsmesh: " + string(e.Kind)
	}
	return "natsmesh: " + string(e.Kind) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error of the same kind, so the sentinels work with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// Retryable reports whether the call was refused before any service code ran,
// so that repeating it is safe even for a non-idempotent request.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindNoResponders, KindOverloaded, KindCircuitOpen, KindRateLimited, KindBrokerUnavailable, KindUpstreamRefused, KindNoMeshFile:
		return true
	}
	return false
}

// HTTPStatus is the HTTP status a client sees for e.
func (e *Error) HTTPStatus() int {
	switch e.Kind {
	case KindNoResponders, KindCircuitOpen, KindOverloaded, KindBrokerUnavailable, KindUpstreamRefused, KindConnectionLost, KindNoMeshFile:
		return http.StatusServiceUnavailable
	case KindTimeout:
		return http.StatusGatewayTimeout
	case KindRateLimited:
		return http.StatusTooManyRequests
	case KindForbidden, KindEgressDenied:
		return http.StatusForbidden
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindHeadersTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	case KindBadRequest:
		return http.StatusBadRequest
	case KindNoRoute:
		return http.StatusNotFound
	case KindRequestTimeout:
		return http.StatusRequestTimeout
	case KindNotImplemented:
		return http.StatusNotImplemented
	case KindUpstream:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// GRPCCode is the gRPC status code a client sees for e.
func (e *Error) GRPCCode() codes.Code {
	switch e.Kind {
	case KindNoResponders, KindCircuitOpen, KindOverloaded, KindUpstream, KindBrokerUnavailable, KindUpstreamRefused, KindConnectionLost, KindNoMeshFile:
		return codes.Unavailable
	case KindTimeout:
		return codes.DeadlineExceeded
	case KindRateLimited, KindTooLarge, KindHeadersTooLarge:
		return codes.ResourceExhausted
	case KindForbidden, KindEgressDenied:
		return codes.PermissionDenied
	case KindBadRequest:
		return codes.InvalidArgument
	case KindNoRoute, KindNotImplemented:
		return codes.Unimplemented
	case KindRequestTimeout:
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// FromError returns err as a mesh error: an *Error in its chain as it is, and
// the failures of a NATS request (no responders, timeout, context deadline,
// max payload, permissions violation, a lost connection) as their kind. Anything else is
// KindInternal. FromError(nil) is nil.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	kind := KindInternal
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		kind = KindNoResponders
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		kind = KindTimeout
	case errors.Is(err, context.Canceled):
		// The caller went away; 499-like, but no client is left to see it.
		kind = KindTimeout
	case errors.Is(err, nats.ErrMaxPayload):
		kind = KindTooLarge
	case errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, nats.ErrAuthorization):
		kind = KindForbidden
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting):
		// nats.go returns these also for a request it had published when
		// the connection went away: the call may have run. Only the
		// sender, before it sends, can say nothing was sent
		// (KindBrokerUnavailable).
		kind = KindConnectionLost
	}
	return &Error{Kind: kind, Message: err.Error(), Err: err}
}

// Reply headers that carry a mesh error.
const (
	HeaderError        = "Mesh-Error"
	HeaderErrorMessage = "Mesh-Error-Message"
	HeaderRetryAfter   = "Retry-After"
)

// ResponseError makes an error in encoding a service's answer (too large,
// too many headers) the service's failure, upstream-unavailable (502)
// naming the response, rather than the caller's (413, 431). Other errors
// and nil are returned as they are.
func ResponseError(err error) error {
	if err == nil {
		return nil
	}
	if e := FromError(err); e.Kind == KindTooLarge || e.Kind == KindHeadersTooLarge {
		return &Error{Kind: KindUpstream, Message: "the service's response: " + e.Message, Err: err}
	}
	return err
}

// ErrorMsg returns the NATS reply that carries e to the caller.
func ErrorMsg(e *Error) *nats.Msg {
	m := &nats.Msg{Header: nats.Header{HeaderError: {string(e.Kind)}}}
	if e.Message != "" {
		m.Header[HeaderErrorMessage] = []string{HeaderSafe(e.Message)}
	}
	if e.RetryAfter > 0 {
		m.Header[HeaderRetryAfter] = []string{e.RetryAfterHeader()}
	}
	return m
}

// ReplyError reads the mesh error a reply carries out of its headers, or
// returns nil for a service's own answer.
func ReplyError(h nats.Header) *Error {
	kind := h.Get(HeaderError)
	if kind == "" {
		return nil
	}
	// Both may come from any NATS client and end up in an HTTP header.
	e := &Error{Kind: Kind(HeaderSafe(kind)), Message: HeaderSafe(h.Get(HeaderErrorMessage))}
	if ra := h.Get(HeaderRetryAfter); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return e
}

// RetryAfterHeader is the Retry-After value that carries e.RetryAfter: whole
// seconds, rounded up, at least 1; "" when e has no RetryAfter.
func (e *Error) RetryAfterHeader() string {
	if e.RetryAfter <= 0 {
		return ""
	}
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// HeaderSafe makes s fit in one NATS or HTTP header value: control bytes
// (CR and LF among them) become spaces, and it is cut at 1024 bytes. The
// codecs pass what a peer wrote (an error's message, a micro error) through
// it before it reaches a header.
func HeaderSafe(s string) string {
	const max = 1024
	if len(s) > max {
		s = s[:max]
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
