package meshstream

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestStartBoundIsOneDecision: a call to confirm whose start frame comes
// as its bound passes is either started or failed not started, never
// both: the keep-alive's tick that finds it not started and fails it
// must not let a start frame in between, or AwaitStart may run the call
// (its start is closed) while its caller is told it did not start.
func TestStartBoundIsOneDecision(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	var both int
	for i := 0; i < 3000 && both == 0; i++ {
		c := newConn(nc, Config{Window: 64 << 10, Idle: time.Minute})
		c.start = make(chan struct{})
		c.startWithin = time.Millisecond
		c.startBy = time.Now().Add(-time.Millisecond)
		c.keeper = time.AfterFunc(time.Hour, func() {}) // the tick re-arms it
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-go1; c.tick() }()
		go func() { defer wg.Done(); <-go1; c.onMsg(frame(wire.FrameStart, 1, nil, ""), nil) }()
		close(go1)
		wg.Wait()
		c.mu.Lock()
		started, err := c.started, c.err
		c.mu.Unlock()
		c.fail(&wire.Error{Kind: wire.KindInternal, Message: "test over"}, false) // stops the keeper
		if started && err != nil && strings.Contains(err.Error(), "not started") {
			both++
		}
	}
	if both > 0 {
		t.Fatal("a call was both started and failed not started")
	}
}
