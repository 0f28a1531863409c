package meshtest

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBrokerConnCheckFor(t *testing.T) {
	b := Broker(t)
	nc := Conn(t, b)
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
	n := 0
	CheckFor(t, time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
}

func TestRepeat(t *testing.T) {
	var n atomic.Int64
	stop := Repeat(0, func() bool { return n.Add(1) < 5 })
	CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n.Load() < 5 {
			return errors.New("fewer than 5 calls")
		}
		return nil
	})
	time.Sleep(5 * time.Millisecond) // a 6th call, were there one, would show here
	stop()
	stop()
	if got := n.Load(); got != 5 {
		t.Fatalf("Repeat called f %d times after it returned false on the 5th, want 5", got)
	}
	var ticks atomic.Int64
	stop = Repeat(time.Millisecond, func() bool { ticks.Add(1); return true })
	CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if ticks.Load() < 3 {
			return errors.New("fewer than 3 ticks")
		}
		return nil
	})
	stop()
	after := ticks.Load()
	time.Sleep(5 * time.Millisecond)
	if ticks.Load() != after {
		t.Fatal("Repeat called f after stop returned")
	}
}
