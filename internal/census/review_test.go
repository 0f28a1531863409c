package census

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// farInstance answers service's census as a, after a delay (an instance
// farther from the caller than the others).
func farInstance(t *testing.T, nc *nats.Conn, service string, a Answer, after time.Duration) {
	t.Helper()
	r := &Responder{Service: service, Answer: func() Answer { return a }}
	if _, err := nc.Subscribe(Subject(service, "*"), func(m *nats.Msg) {
		time.Sleep(after)
		r.Serve(m)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// takingNow reports whether a census of service for any subset is being
// taken.
func (c *Census) takingNow(service string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rolls[rollKey(service, "")]
	return r != nil && r.taking != nil
}

// A pick that waited for another pick's census, which that pick's context
// cut short, has learnt nothing: it takes a census of its own, within its
// own context, and finds the live instance; it neither offers none (the
// call then goes to the queue group, which may draw the silent instance
// again) nor an instance from a roll older than MaxAge.
func TestPickAfterAnotherPicksCensusWasCutShort(t *testing.T) {
	b := meshtest.Broker(t)
	farInstance(t, meshtest.Conn(t, b), "orders", Answer{ID: "A", Addressable: true}, 40*time.Millisecond)
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: time.Hour, Wait: 2 * time.Second}

	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Pick(short, mux, nc, "orders", "")
	}()
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if !c.takingNow("orders") {
			return context.DeadlineExceeded
		}
		return nil
	})
	id, ok := c.Pick(context.Background(), mux, nc, "orders", "")
	<-done
	if id != "A" || !ok {
		t.Fatalf("Pick after another pick's census was cut short = %q %v, want A", id, ok)
	}
}

// A pick whose own context ends while it takes the census offers none,
// not an instance of a roll older than MaxAge.
func TestPickCutShortOffersNoStaleInstance(t *testing.T) {
	b := meshtest.Broker(t)
	srv := meshtest.Conn(t, b)
	sub, err := srv.Subscribe(Subject("orders", "*"), (&Responder{Service: "orders",
		Answer: func() Answer { return Answer{ID: "A", Addressable: true} }}).Serve)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: 20 * time.Millisecond, Wait: time.Second}
	if id, ok := c.Pick(context.Background(), mux, nc, "orders", ""); id != "A" || !ok {
		t.Fatalf("Pick = %q %v, want A", id, ok)
	}
	// A is gone; its census is past MaxAge.
	sub.Unsubscribe()
	srv.Flush()
	time.Sleep(50 * time.Millisecond)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if id, ok := c.Pick(short, mux, nc, "orders", ""); ok {
		t.Fatalf("Pick cut short = %q, from a census older than MaxAge; want none", id)
	}
}

// A census taken for one subset ends a moment (Gather) after the first
// instance of that subset answers; it says nothing of the instances of
// another subset that answer later. A pick for that other subset within
// MaxAge must not take it for "none live": here the v2 instance answers
// 30 ms after the v1 one, well within Wait.
func TestPickForAnotherSubsetThanTheCensusWasTakenFor(t *testing.T) {
	b := meshtest.Broker(t)
	instance(t, meshtest.Conn(t, b), "orders", Answer{ID: "A", Subset: "v1", Addressable: true})
	farInstance(t, meshtest.Conn(t, b), "orders", Answer{ID: "B", Subset: "v2", Addressable: true}, 30*time.Millisecond)
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: time.Hour}
	ctx := context.Background()
	if id, ok := c.Pick(ctx, mux, nc, "orders", "v1"); id != "A" || !ok {
		t.Fatalf("Pick(v1) = %q %v, want A", id, ok)
	}
	if id, ok := c.Pick(ctx, mux, nc, "orders", "v2"); id != "B" || !ok {
		t.Fatalf("Pick(v2) after a census taken for v1 = %q %v, want B (live, answering within Wait)", id, ok)
	}
}
