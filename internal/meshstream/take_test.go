package meshstream

import (
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/wire"
)

// TestTakeWithin: the wait for a first sign is its floor until signs come
// late; then the smoothed delay and four times its variation (RFC 6298),
// plus the callee's open delay for a call not confirmed, at most
// wire.MaxTakeWithin. Silence teaches it nothing, and a service's signs
// teach only its own calls' wait.
func TestTakeWithin(t *testing.T) {
	tk := NewTake(0)
	if got := tk.Within("orders", true); got != wire.DefaultTakeWithin {
		t.Fatalf("no sign yet: %v, want the floor %v", got, wire.DefaultTakeWithin)
	}
	for range 20 {
		tk.observe("orders", 2*time.Millisecond)
	}
	if got := tk.Within("orders", true); got != wire.DefaultTakeWithin {
		t.Fatalf("prompt signs: %v, want the floor", got)
	}
	for range 50 {
		tk.observe("orders", 400*time.Millisecond)
	}
	got := tk.Within("orders", true)
	if got < 400*time.Millisecond || got > time.Second {
		t.Fatalf("signs at 400ms: wait %v, want it past them (and not far)", got)
	}
	if d := tk.Within("orders", false) - got; d != wire.StreamOpenAfter {
		t.Fatalf("a call not confirmed waits %v more, want the open delay %v", d, wire.StreamOpenAfter)
	}
	for range 50 {
		tk.observe("orders", time.Minute)
	}
	if got := tk.Within("orders", false); got != wire.MaxTakeWithin {
		t.Fatalf("signs at a minute: %v, want the cap %v", got, wire.MaxTakeWithin)
	}
	if got := tk.Within("inventory", true); got != wire.DefaultTakeWithin {
		t.Fatalf("another service, no sign of it yet: %v, want the floor (orders' signs are orders')", got)
	}
	if got := NewTake(2*time.Second).Within("orders", true); got != 2*time.Second {
		t.Fatalf("floor 2s: %v", got)
	}
}
