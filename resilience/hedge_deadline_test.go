package resilience_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/wire"
)

// TestHedgeDelayPastDeadline: a call whose deadline comes before its hedge
// delay answers at its deadline, not when the delay would have sent a
// hedge (it answered 10 s late: failsafe-go's hedge executor waits out
// its delay without watching the call's context).
func TestHedgeDelayPastDeadline(t *testing.T) {
	s := sender(t, "version: 1\nservices:\n  orders:\n    policy: {idempotent: true, retries: {attempts: 1}, hedge: {delay: 10s}}\n", silent)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Send(ctx, getCall())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a call with a 300ms deadline answered after %v (its hedge delay is 10s)", took.Round(time.Millisecond))
	}
	if !errors.Is(err, wire.ErrTimeout) {
		t.Errorf("err %v, want timeout", err)
	}
}
