package resilience

import (
	"testing"
	"time"
)

// withinSecond runs f until it ran within one Unix second (f reads the
// clock itself, and a second that ends during f moves the window).
func withinSecond(t *testing.T, f func(now int64) bool) bool {
	t.Helper()
	for range 100 {
		now := time.Now().Unix()
		got := f(now)
		if time.Now().Unix() == now {
			return got
		}
	}
	t.Fatal("no run of f within one second")
	return false
}

// TestRetryBudgetWindow: the calls of the last budgetSlots seconds count,
// this one included, and no older ones, though their slot still holds them.
func TestRetryBudgetWindow(t *testing.T) {
	for _, tc := range []struct {
		age     int64 // seconds before now
		counted bool
	}{{0, true}, {1, true}, {budgetSlots - 1, true}, {budgetSlots, false}, {budgetSlots + 1, false}} {
		got := withinSecond(t, func(now int64) bool {
			b := newRetryBudget(0.5, 0)
			sec := now - tc.age
			b.slots[sec%budgetSlots] = budgetSlot{second: sec, calls: 10}
			return b.tryRetry()
		})
		if got != tc.counted {
			t.Errorf("10 calls %d s ago: retry allowed %v, want %v", tc.age, got, tc.counted)
		}
	}
}

// TestRetryBudgetShare: the share admits a retry as long as the retries,
// this one included, stay within ratio of the calls (equal included).
func TestRetryBudgetShare(t *testing.T) {
	withinSecond(t, func(int64) bool {
		b := newRetryBudget(0.5, 0)
		for range 4 {
			b.recordCall()
		}
		var allowed []bool
		for range 3 {
			allowed = append(allowed, b.tryRetry())
		}
		if allowed[0] != true || allowed[1] != true || allowed[2] != false {
			t.Errorf("4 calls at 50%%: retries allowed %v, want [true true false]", allowed)
		}
		return true
	})
}

// TestRetryBudgetFloor: without calls, the floor alone admits retries,
// min_per_second of them; a floor of 0 admits none.
func TestRetryBudgetFloor(t *testing.T) {
	b := newRetryBudget(0.2, 2)
	n := 0
	for range 5 {
		if b.tryRetry() {
			n++
		}
	}
	if n != 2 {
		t.Errorf("floor of 2 per second: %d retries allowed", n)
	}
	if b := newRetryBudget(0.2, 0); b.reserve != nil || b.tryRetry() {
		t.Error("floor of 0: a retry allowed")
	}
}
