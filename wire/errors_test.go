package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
)

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		kind      Kind
		sentinel  *Error
		status    int
		code      codes.Code
		retryable bool
	}{
		{KindNoResponders, ErrNoResponders, 503, codes.Unavailable, true},
		{KindTimeout, ErrTimeout, 504, codes.DeadlineExceeded, false},
		{KindCircuitOpen, ErrCircuitOpen, 503, codes.Unavailable, true},
		{KindOverloaded, ErrOverloaded, 503, codes.Unavailable, true},
		{KindRateLimited, ErrRateLimited, 429, codes.ResourceExhausted, true},
		{KindForbidden, ErrForbidden, 403, codes.PermissionDenied, false},
		{KindTooLarge, ErrTooLarge, 413, codes.ResourceExhausted, false},
		{KindHeadersTooLarge, ErrHeadersTooLarge, 431, codes.ResourceExhausted, false},
		{KindBadRequest, ErrBadRequest, 400, codes.InvalidArgument, false},
		{KindNoRoute, ErrNoRoute, 404, codes.Unimplemented, false},
		{KindRequestTimeout, ErrRequestTimeout, 408, codes.DeadlineExceeded, false},
		{KindNotImplemented, ErrNotImplemented, 501, codes.Unimplemented, false},
		{KindUpstreamRefused, ErrUpstreamRefused, 503, codes.Unavailable, true},
		{KindBrokerUnavailable, ErrBrokerUnavailable, 503, codes.Unavailable, true},
		{KindNoMeshFile, ErrNoMeshFile, 503, codes.Unavailable, true},
		{KindUpstream, ErrUpstream, 502, codes.Unavailable, false},
		{KindInternal, ErrInternal, 500, codes.Internal, false},
		{Kind("from-the-future"), nil, 500, codes.Internal, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			e := Errorf(tt.kind, "detail %d", 1)
			if got := e.HTTPStatus(); got != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", got, tt.status)
			}
			if got := e.GRPCCode(); got != tt.code {
				t.Errorf("GRPCCode = %v, want %v", got, tt.code)
			}
			if got := e.Retryable(); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			if want := "natsmesh: " + string(tt.kind) + ": detail 1"; e.Error() != want {
				t.Errorf("Error() = %q, want %q", e.Error(), want)
			}
			if tt.sentinel == nil {
				return
			}
			wrapped := fmt.Errorf("calling orders: %w", e)
			if !errors.Is(wrapped, tt.sentinel) {
				t.Errorf("errors.Is(%v, sentinel of %s) = false", wrapped, tt.kind)
			}
			other := ErrInternal
			if tt.sentinel == ErrInternal {
				other = ErrTimeout
			}
			if errors.Is(wrapped, other) {
				t.Errorf("errors.Is(%v, %v) = true", wrapped, other)
			}
			// The reply carries the kind, and the decoder gives it back.
			e.RetryAfter = 1500 * time.Millisecond
			if back := ReplyError(ErrorMsg(e).Header); back == nil || back.Kind != tt.kind || back.Message != "detail 1" || back.RetryAfter != 2*time.Second {
				t.Errorf("ReplyError(ErrorMsg) = %#v, want kind %s, message, Retry-After 2s", back, tt.kind)
			}
		})
	}
}

func TestFromError(t *testing.T) {
	mesh := Errorf(KindOverloaded, "busy")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"no responders", nats.ErrNoResponders, KindNoResponders},
		{"nats timeout", nats.ErrTimeout, KindTimeout},
		{"deadline", context.DeadlineExceeded, KindTimeout},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), KindTimeout},
		{"canceled", context.Canceled, KindTimeout},
		{"max payload", nats.ErrMaxPayload, KindTooLarge},
		{"permissions", nats.ErrPermissionViolation, KindForbidden},
		{"authorization", nats.ErrAuthorization, KindForbidden},
		{"closed", nats.ErrConnectionClosed, KindConnectionLost},
		{"draining", nats.ErrConnectionDraining, KindConnectionLost},
		{"disconnected", nats.ErrDisconnected, KindConnectionLost},
		{"reconnecting", nats.ErrConnectionReconnecting, KindConnectionLost},
		{"other", errors.New("boom"), KindInternal},
		{"mesh error as is", fmt.Errorf("wrapped: %w", mesh), KindOverloaded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := FromError(tt.err)
			if e.Kind != tt.want {
				t.Fatalf("FromError(%v).Kind = %s, want %s", tt.err, e.Kind, tt.want)
			}
			if !errors.Is(e, tt.err) && e != mesh {
				t.Fatalf("FromError(%v) lost the cause: errors.Is = false", tt.err)
			}
		})
	}
	if FromError(nil) != nil {
		t.Fatal("FromError(nil) != nil")
	}
}

func TestErrorMsgSanitizesMessage(t *testing.T) {
	m := ErrorMsg(Errorf(KindInternal, "line one\r\nStatus: 503\x00"))
	if v := m.Header.Get(HeaderErrorMessage); v != "line one  Status: 503 " {
		t.Fatalf("message header %q", v)
	}
}
