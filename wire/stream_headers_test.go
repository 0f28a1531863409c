package wire

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestStreamHeaders: the stream protocol's headers as read, with the
// bounds docs/wire.md gives them (Mesh-Idle 100ms to 10m, Mesh-Confirm
// 200ms to 10s, a credit up to 64 MiB).
func TestStreamHeaders(t *testing.T) {
	if FrameOf(nil) != "" || FrameOf(nats.Header{}) != "" || FrameOf(nats.Header{HeaderFrame: {}}) != "" {
		t.Error("FrameOf of no frame is not empty")
	}
	if got := FrameOf(nats.Header{HeaderFrame: {FrameCancel, FrameStart}}); got != FrameCancel {
		t.Errorf("FrameOf = %q, want the first value", got)
	}
	for v, want := range map[string]uint64{"": 0, "1": 1, "18446744073709551615": 1<<64 - 1, "-1": 0, "x": 0} {
		if got := FrameSeq(nats.Header{HeaderSeq: {v}}); got != want {
			t.Errorf("FrameSeq(%q) = %d, want %d", v, got, want)
		}
	}
	for v, want := range map[string]int64{"1": 1, "67108864": 64 << 20, "67108865": 0, "0": 0, "-5": 0, "x": 0} {
		got, ok := Credit(v)
		if got != want || ok != (want > 0) {
			t.Errorf("Credit(%q) = %d, %v; want %d", v, got, ok, want)
		}
	}

	const def = 7 * time.Second
	for v, want := range map[string]time.Duration{
		"": def, "100ms": 100 * time.Millisecond, "10m": 10 * time.Minute, "30s": 30 * time.Second,
		"99ms": -1, "10m1ms": -1, "soon": -1,
	} {
		got, err := StreamIdle(nats.Header{HeaderIdle: {v}}, def)
		if want < 0 {
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("StreamIdle(%q) = %v, %v; want bad-request", v, got, err)
			}
		} else if err != nil || got != want {
			t.Errorf("StreamIdle(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	for v, want := range map[string]time.Duration{
		"": 0, "200ms": 200 * time.Millisecond, "10s": 10 * time.Second, "300ms": 300 * time.Millisecond,
		"199ms": -1, "10.001s": -1, "x": -1,
	} {
		got, ok, err := TakeWithin(nats.Header{HeaderConfirm: {v}})
		switch {
		case want < 0:
			if ok || !errors.Is(err, ErrBadRequest) {
				t.Errorf("TakeWithin(%q) = %v, %v, %v; want bad-request", v, got, ok, err)
			}
		case err != nil || got != want || ok != (v != ""):
			t.Errorf("TakeWithin(%q) = %v, %v, %v; want %v", v, got, ok, err, want)
		}
	}
}

// TestStreamDefaults: the protocol's numbers that docs/wire.md states
// (the contract between agents of different versions).
func TestStreamDefaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"DefaultStreamIdle", DefaultStreamIdle, 10 * time.Second},
		{"StreamOpenAfter", StreamOpenAfter, 100 * time.Millisecond},
		{"DefaultTakeWithin", DefaultTakeWithin, 300 * time.Millisecond},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, docs/wire.md says %v", tc.name, tc.got, tc.want)
		}
	}
}
