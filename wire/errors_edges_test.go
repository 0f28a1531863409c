package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRetryAfterHeader: whole seconds rounded up, at least one; nothing
// without a RetryAfter.
func TestRetryAfterHeader(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "",
		-time.Second:            "",
		time.Nanosecond:         "1",
		time.Second:             "1",
		time.Second + 1:         "2",
		1500 * time.Millisecond: "2",
		2 * time.Second:         "2",
		2*time.Second + 1:       "3",
	} {
		if got := (&Error{Kind: KindOverloaded, RetryAfter: d}).RetryAfterHeader(); got != want {
			t.Errorf("RetryAfter %v: header %q, want %q", d, got, want)
		}
	}
}

// TestResponseError: a service's answer too large to encode is the
// service's failure (upstream), not the caller's; other errors pass.
func TestResponseError(t *testing.T) {
	if ResponseError(nil) != nil {
		t.Error("ResponseError(nil) is not nil")
	}
	for _, err := range []error{ErrTooLarge, ErrHeadersTooLarge} {
		got := FromError(ResponseError(err))
		if got.Kind != KindUpstream || !errors.Is(ResponseError(err), err) {
			t.Errorf("ResponseError(%v) = %v, want upstream wrapping it", err, got)
		}
	}
	other := errors.New("other")
	if ResponseError(other) != other {
		t.Error("ResponseError changed an error of another kind")
	}
}

// TestHeaderSafeEdges: a control byte anywhere, the first byte included,
// becomes a space; a space and printable bytes stay; a value of exactly
// the bound is kept whole.
func TestHeaderSafeEdges(t *testing.T) {
	long := strings.Repeat("x", 1024)
	for in, want := range map[string]string{
		"\nabc":       " abc",
		"ab\x7f":      "ab ",
		"a b~":        "a b~",
		"\x1f":        " ",
		long:          long,
		long + "y":    long,
		"é\x00ü":      "é ü",
		"tab\there":   "tab here",
		"\r\nsmuggle": "  smuggle",
	} {
		if got := HeaderSafe(in); got != want {
			t.Errorf("HeaderSafe(%.20q) = %.20q, want %.20q", in, got, want)
		}
	}
}
