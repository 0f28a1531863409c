package admin

import (
	"errors"
	"time"
)

// ErrDone is returned by [WaitReady] when its component finished shutting
// down before it was ready.
var ErrDone = errors.New("shut down")

// Final marks a reason not to be ready that no wait changes (the broker
// refuses the component's subscriptions): WaitReady returns it at once.
func Final(reason error) error { return final{reason} }

type final struct{ error }

func (f final) Unwrap() error { return f.error }

// WaitReady is what a component's Ready(timeout) does: it asks ready (the
// component's readiness, as /readyz answers it) until it returns nil,
// then returns nil. It returns ErrDone once done is closed (nil: never),
// a reason marked Final at once, and after timeout the reason ready gave
// last.
func WaitReady(timeout time.Duration, done <-chan struct{}, ready func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if f, ok := err.(final); ok {
			return f.error
		}
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
