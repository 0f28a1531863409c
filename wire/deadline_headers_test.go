package wire

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestDeadlineHeaders: Mesh-Timeout and Mesh-Start-By as written and read
// back, their bounds, and what is refused.
func TestDeadlineHeaders(t *testing.T) {
	h := nats.Header{}
	for left, want := range map[time.Duration]string{
		0:                       "1ms",
		-time.Second:            "1ms",
		time.Millisecond:        "1ms",
		1500 * time.Microsecond: "1.5ms",
		2*time.Second + 1:       "2s",
	} {
		SetTimeout(h, left)
		if got := h.Get(HeaderTimeout); got != want {
			t.Errorf("SetTimeout(%v): %q, want %q", left, got, want)
		}
	}

	for v, want := range map[string]time.Duration{
		"":      0,
		"1s":    time.Second,
		"24h":   MaxTimeout,
		"25h":   MaxTimeout,
		"0s":    -1,
		"-1s":   -1,
		"soon":  -1,
		"1ns":   time.Nanosecond,
		" 1s ":  -1, // the message's header is written by SetTimeout
		"1h30m": 90 * time.Minute,
	} {
		got, err := Timeout(nats.Header{HeaderTimeout: {v}})
		if want < 0 {
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("Timeout(%q) = %v, %v; want bad-request", v, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Timeout(%q) = %v, %v; want %v", v, got, err, want)
		}
	}

	for _, tc := range []struct {
		h    map[string][]string
		want time.Duration // -1: bad request
	}{
		{nil, 0},
		{map[string][]string{"Mesh-Timeout": {"250ms"}}, 250 * time.Millisecond},
		{map[string][]string{"mesh-timeout": {" 2s "}}, 2 * time.Second},
		{map[string][]string{"mesh-timeout": {}, "Other": {"1s"}}, 0},
		{map[string][]string{"Mesh-Timeout": {"48h"}}, MaxTimeout},
		{map[string][]string{"Mesh-Timeout": {"0s"}}, -1},
		{map[string][]string{"Mesh-Timeout": {"-1s"}}, -1},
		{map[string][]string{"Mesh-Timeout": {"1"}}, -1},
	} {
		got, err := RequestTimeout(tc.h)
		if tc.want < 0 {
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("RequestTimeout(%v) = %v, %v; want bad-request", tc.h, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("RequestTimeout(%v) = %v, %v; want %v", tc.h, got, err, tc.want)
		}
	}

	at := time.UnixMilli(1_700_000_000_123)
	SetStartBy(h, at)
	if got, ok, err := StartBy(h); !ok || err != nil || !got.Equal(at) {
		t.Errorf("StartBy after SetStartBy(%v) = %v, %v, %v", at, got, ok, err)
	}
	if _, ok, err := StartBy(nats.Header{}); ok || err != nil {
		t.Errorf("StartBy(none) = %v, %v", ok, err)
	}
	for _, v := range []string{"0", "-1", "soon", "1.5"} {
		if _, ok, err := StartBy(nats.Header{HeaderStartBy: {v}}); ok || !errors.Is(err, ErrBadRequest) {
			t.Errorf("StartBy(%q) = %v, %v; want bad-request", v, ok, err)
		}
	}
	if got, ok, err := StartBy(nats.Header{HeaderStartBy: {"1"}}); !ok || err != nil || got.UnixMilli() != 1 {
		t.Errorf(`StartBy("1") = %v, %v, %v`, got, ok, err)
	}
}
