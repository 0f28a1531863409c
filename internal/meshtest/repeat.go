package meshtest

import (
	"sync"
	"time"
)

// Repeat calls f in a goroutine again and again until f returns false or
// the returned stop is called: every interval when every is above zero
// (the first call one interval in), else back to back. stop ends the
// loop and waits for the goroutine to return; calling it again is a no-op.
func Repeat(every time.Duration, f func() bool) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var tick <-chan time.Time
		if every > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		}
		for {
			if tick != nil {
				select {
				case <-quit:
					return
				case <-tick:
				}
			} else {
				select {
				case <-quit:
					return
				default:
				}
			}
			if !f() {
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}
