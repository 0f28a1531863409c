package logevery

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestAllow: the first event is allowed, those within the interval are
// not and are counted, and the next allowed one reports them.
func TestAllow(t *testing.T) {
	l := Limiter{Interval: 50 * time.Millisecond}
	if n, ok := l.Allow(); !ok || n != 0 {
		t.Fatalf("first: %d %v, want 0 true", n, ok)
	}
	for i := range 5 {
		if _, ok := l.Allow(); ok {
			t.Fatalf("event %d within the interval allowed", i)
		}
	}
	time.Sleep(60 * time.Millisecond) // the interval itself is what is tested
	if n, ok := l.Allow(); !ok || n != 5 {
		t.Fatalf("after the interval: %d %v, want 5 true", n, ok)
	}
	if n, ok := l.Allow(); ok || n != 0 {
		t.Fatalf("right after: %d %v, want 0 false", n, ok)
	}
}

// TestZeroValue: the zero Limiter allows one event per DefaultInterval.
func TestZeroValue(t *testing.T) {
	var l Limiter
	if _, ok := l.Allow(); !ok {
		t.Fatal("first event refused")
	}
	if _, ok := l.Allow(); ok {
		t.Fatal("a second event within DefaultInterval allowed")
	}
}
