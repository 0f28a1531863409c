package wire

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
)

func httpReply(status int) *nats.Msg {
	return &nats.Msg{Header: nats.Header{HeaderStatus: {strconv.Itoa(status)}}}
}

func grpcReply(c codes.Code) *nats.Msg {
	return &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {strconv.Itoa(int(c))}}}
}

// want is what every variant makes of one outcome: the rule
// (ServerFailed), metrics (CountsAsError), passive health, the caller's
// breaker (DestinationFailed), the retry policy and the hedge policy.
type want struct {
	failed, metrics bool
	health          Verdict
	breaker         bool
	retry           Retry
	endsHedge       bool
}

func (w want) String() string {
	return fmt.Sprintf("failed %v metrics %v health %v breaker %v retry %v endsHedge %v", w.failed, w.metrics, w.health, w.breaker, w.retry, w.endsHedge)
}

func check(t *testing.T, name string, o Outcome, w want) {
	t.Helper()
	got := want{o.ServerFailed(), o.CountsAsError(), o.PassiveHealth(), o.DestinationFailed(), o.Retry(), o.EndsHedge()}
	if got != w {
		t.Errorf("%s (%+v):\n got %v\nwant %v", name, o, got, w)
	}
}

var (
	answer      = want{health: Succeeded, endsHedge: true}
	serverError = want{failed: true, metrics: true, health: Failed, breaker: true, retry: RetryIdempotent}
	// notImplemented: a failure to the metrics, nothing against the
	// instance or the destination, never retried, and final.
	notImplemented = want{failed: true, metrics: true, health: Neither, endsHedge: true}
	// outOfTime: a failure to the metrics and the breaker, neither to
	// passive health (as a timeout), retried when idempotent.
	outOfTime = want{failed: true, metrics: true, health: Neither, breaker: true, retry: RetryIdempotent}
)

// TestOutcomeHTTPStatuses: issue 17 item 1. Every HTTP status by every
// variant of the one rule.
func TestOutcomeHTTPStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		w      want
	}{
		{200, answer}, {204, answer}, {301, answer}, {400, answer}, {404, answer}, {429, answer}, {499, answer},
		{500, serverError}, {502, serverError}, {503, serverError}, {599, serverError},
		{501, notImplemented},
		{504, outOfTime},
	} {
		for _, proto := range []Proto{ProtoHTTP, ""} {
			o := OutcomeOf(proto, httpReply(tc.status), nil)
			if o.Proto != ProtoHTTP || o.Code != tc.status || o.Err != nil {
				t.Errorf("%d: read as %+v", tc.status, o)
			}
			check(t, fmt.Sprintf("HTTP %d, proto %q", tc.status, proto), o, tc.w)
		}
	}
}

// TestOutcomeGRPCCodes: issue 17 item 1. Every gRPC code by every variant:
// the server failures are the codes gRPC maps to a 5xx (OpenTelemetry's
// server errors), and only UNAVAILABLE among them is retried.
func TestOutcomeGRPCCodes(t *testing.T) {
	noRetry := serverError
	noRetry.retry = RetryNever
	outOfTimeGRPC := outOfTime
	outOfTimeGRPC.retry = RetryNever
	wants := map[codes.Code]want{
		codes.OK: answer, codes.Canceled: answer, codes.InvalidArgument: answer, codes.NotFound: answer,
		codes.AlreadyExists: answer, codes.PermissionDenied: answer, codes.ResourceExhausted: answer,
		codes.FailedPrecondition: answer, codes.Aborted: answer, codes.OutOfRange: answer, codes.Unauthenticated: answer,
		codes.Unknown: noRetry, codes.Internal: noRetry, codes.DataLoss: noRetry,
		codes.Unavailable:      serverError,
		codes.Unimplemented:    notImplemented,
		codes.DeadlineExceeded: outOfTimeGRPC,
	}
	for c := codes.Code(0); c <= codes.Unauthenticated; c++ {
		w, ok := wants[c]
		if !ok {
			t.Fatalf("no expectation for %v", c)
		}
		for _, proto := range []Proto{ProtoGRPC, ""} {
			o := OutcomeOf(proto, grpcReply(c), nil)
			if o.Proto != ProtoGRPC || o.Code != int(c) || o.Err != nil {
				t.Errorf("%v: read as %+v", c, o)
			}
			check(t, fmt.Sprintf("gRPC %v, proto %q", c, proto), o, w)
		}
	}
}

// TestOutcomeMeshErrors: issue 17 item 1. Every mesh error kind by every
// variant: always an error to the metrics, never a server failure.
func TestOutcomeMeshErrors(t *testing.T) {
	meshErr := want{metrics: true, health: Neither}
	upstream := meshErr
	upstream.health, upstream.breaker = Failed, true
	refused := upstream
	refused.retry = RetryAlways
	// The instance's agent lost its service mid-call (it died with the
	// call, or broke its answer): it may have run, so as a service's own
	// 502, again only where running twice is harmless (docs/wire.md's
	// table; it was never before: a GET in flight when its service died
	// failed though a sibling served).
	upstream.retry = RetryIdempotent
	internal := meshErr
	internal.health = Failed
	nothingRan := meshErr
	nothingRan.retry = RetryAlways
	noResponders := nothingRan
	noResponders.breaker = true
	timeout := meshErr
	timeout.breaker, timeout.retry = true, RetryIdempotent
	// The connection to the instance was lost (a stream's silent peer,
	// an instance that died with the call): it may have run, so again
	// only where running twice is harmless.
	lost := meshErr
	lost.retry = RetryIdempotent
	for _, tc := range []struct {
		kind Kind
		w    want
	}{
		{KindNoResponders, noResponders},
		{KindTimeout, timeout},
		{KindCircuitOpen, meshErr},
		{KindOverloaded, nothingRan},
		{KindRateLimited, meshErr},
		{KindForbidden, meshErr},
		{KindTooLarge, meshErr},
		{KindHeadersTooLarge, meshErr},
		{KindBadRequest, meshErr},
		{KindNoRoute, meshErr},
		{KindRequestTimeout, meshErr},
		{KindNotImplemented, meshErr},
		{KindUpstream, upstream},
		{KindUpstreamRefused, refused},
		{KindBrokerUnavailable, nothingRan},
		{KindNoMeshFile, nothingRan},
		{KindConnectionLost, lost},
		{KindInternal, internal},
		{"made-up", meshErr},
	} {
		for _, proto := range []Proto{ProtoHTTP, ProtoGRPC} {
			e := &Error{Kind: tc.kind}
			o := OutcomeOf(proto, nil, e)
			wantCode := e.HTTPStatus()
			if proto == ProtoGRPC {
				wantCode = int(e.GRPCCode())
			}
			if o.Err != e || o.Proto != proto || o.Code != wantCode {
				t.Errorf("%s over %s: read as %+v", tc.kind, proto, o)
			}
			check(t, fmt.Sprintf("%s over %s", tc.kind, proto), o, tc.w)
		}
	}
	// A call given up is no evidence against its destination.
	cancelled := OutcomeOf(ProtoHTTP, nil, &Error{Kind: KindTimeout, Err: context.Canceled})
	if cancelled.DestinationFailed() {
		t.Error("a cancelled timeout counts against the destination")
	}
	// Errors that are no *Error read as FromError makes them.
	if o := OutcomeOf(ProtoHTTP, nil, context.DeadlineExceeded); o.Err.Kind != KindTimeout || !o.DestinationFailed() {
		t.Errorf("context.DeadlineExceeded: %+v", o)
	}
}

// TestOutcomeNATSNative: a reply without the mesh's status headers (a
// nats.go/micro service's) reads as its client sees it.
func TestOutcomeNATSNative(t *testing.T) {
	micro := func(code string) *nats.Msg {
		return &nats.Msg{Header: nats.Header{"Nats-Service-Error": {"boom"}, "Nats-Service-Error-Code": {code}}}
	}
	for _, tc := range []struct {
		name  string
		proto Proto
		reply *nats.Msg
		code  int
		w     want
	}{
		{"plain", ProtoHTTP, &nats.Msg{Data: []byte("hi")}, 200, answer},
		{"plain, no header", "", nil, 200, answer},
		{"plain grpc", ProtoGRPC, &nats.Msg{}, int(codes.OK), answer},
		{"micro 500", ProtoHTTP, micro("500"), 500, serverError},
		{"micro 404", ProtoHTTP, micro("404"), 404, answer},
		{"micro bad code", ProtoHTTP, micro("x"), 500, serverError},
		{"micro 404 over grpc", ProtoGRPC, micro("404"), int(codes.Unimplemented), notImplemented},
		{"micro 503 over grpc", ProtoGRPC, micro("503"), int(codes.Unavailable), serverError},
		{"bad Mesh-Status", ProtoHTTP, &nats.Msg{Header: nats.Header{HeaderStatus: {"abc"}}}, 200, answer},
		{"bad Mesh-Grpc-Status", ProtoGRPC, &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"-1"}}}, int(codes.Internal),
			want{failed: true, metrics: true, health: Failed, breaker: true}},
	} {
		o := OutcomeOf(tc.proto, tc.reply, nil)
		if o.Code != tc.code {
			t.Errorf("%s: code %d, want %d", tc.name, o.Code, tc.code)
		}
		check(t, tc.name, o, tc.w)
	}
}

// TestOutcomeWithTrailer: a gRPC stream's status in its trailer replaces
// its header's; an HTTP stream's status, and a mesh error, stay.
func TestOutcomeWithTrailer(t *testing.T) {
	grpcTrailer := nats.Header{HeaderGRPCStatus: {"14"}}
	head := AnswerOutcome(ProtoGRPC, nats.Header{"content-type": {"application/grpc"}})
	if head.Code != int(codes.OK) {
		t.Fatalf("gRPC stream's header: code %d, want OK", head.Code)
	}
	if o := head.WithTrailer(grpcTrailer); o.Code != int(codes.Unavailable) || !o.ServerFailed() {
		t.Errorf("gRPC stream ending UNAVAILABLE: %+v", o)
	}
	if o := head.WithTrailer(nil); o != head {
		t.Errorf("gRPC stream without a status in its trailer: %+v, want %+v", o, head)
	}
	httpHead := AnswerOutcome(ProtoHTTP, nats.Header{HeaderStatus: {"200"}})
	if o := httpHead.WithTrailer(grpcTrailer); o != httpHead {
		t.Errorf("HTTP stream: %+v, want its header's %+v", o, httpHead)
	}
	failed := OutcomeOf(ProtoGRPC, nil, &Error{Kind: KindConnectionLost})
	if o := failed.WithTrailer(grpcTrailer); o != failed {
		t.Errorf("mesh error: %+v", o)
	}
}
