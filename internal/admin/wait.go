package admin

import (
	"errors"
	"time"
)

// ErrDone is returned by [WaitReady] when its component finished shutting
// down before it was ready.
var ErrDone = errors.New("shut down")

// WaitReady is what a component's Ready(timeout) does: it asks ready (the
// component's readiness, as /readyz answers it) until it returns nil,
// then returns nil. It returns ErrDone once done is closed (nil: never),
// and after timeout the reason ready gave last.
func WaitReady(timeout time.Duration, done <-chan struct{}, ready func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return ErrDone
		case <-deadline.C:
			return err
		case <-tick.C:
		}
	}
}
