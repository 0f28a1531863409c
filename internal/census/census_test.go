package census

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// instance answers service's census as a on a connection of its own, and
// counts the requests it got.
func instance(t *testing.T, nc *nats.Conn, service string, a Answer) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	r := &Responder{Service: service, Answer: func() Answer { return a }}
	if _, err := nc.Subscribe(Subject(service, "*"), func(m *nats.Msg) { n.Add(1); r.Serve(m) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

func caller(t *testing.T, nc *nats.Conn, name string) *replymux.Mux {
	t.Helper()
	mux, err := replymux.New(context.Background(), nc, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	return mux
}

// Pick offers only addressable instances of the subset asked, never one
// suspected while it is, and shares one census among the picks of a
// subset of its age.
func TestPick(t *testing.T) {
	b := meshtest.Broker(t)
	srv := meshtest.Conn(t, b)
	asked := instance(t, srv, "orders", Answer{ID: "A", Subset: "v1", Addressable: true})
	instance(t, srv, "orders", Answer{ID: "B", Subset: "v2", Addressable: true})
	instance(t, srv, "orders", Answer{ID: "C", Subset: "v1"}) // not addressable: out of its queue groups
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: time.Hour, Gather: 50 * time.Millisecond, SuspectFor: 200 * time.Millisecond}
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	picked := map[string]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, ok := c.Pick(ctx, mux, nc, "orders", "")
			mu.Lock()
			defer mu.Unlock()
			if ok {
				picked[id]++
			}
		}()
	}
	wg.Wait()
	if picked["A"]+picked["B"] != 20 || picked["C"] != 0 {
		t.Fatalf("picked %v, want A and B only, 20 in all", picked)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("%d census requests for 20 concurrent picks, want 1", n)
	}
	for range 10 {
		if id, ok := c.Pick(ctx, mux, nc, "orders", "v1"); id != "A" || !ok {
			t.Fatalf("Pick(v1) = %q %v, want A", id, ok)
		}
	}
	if id, ok := c.Pick(ctx, mux, nc, "orders", "v3"); ok {
		t.Fatalf("Pick(v3) = %q, want none", id)
	}
	c.Suspect("orders", "A")
	if id, ok := c.Pick(ctx, mux, nc, "orders", "v1"); ok {
		t.Fatalf("Pick(v1) with A suspected = %q, want none", id)
	}
	for range 10 {
		if id, _ := c.Pick(ctx, mux, nc, "orders", ""); id != "B" {
			t.Fatalf("Pick with A suspected = %q, want B", id)
		}
	}
	time.Sleep(250 * time.Millisecond)
	if id, ok := c.Pick(ctx, mux, nc, "orders", "v1"); id != "A" || !ok {
		t.Fatalf("Pick(v1) once A's suspicion ended = %q %v, want A", id, ok)
	}
	// One census for the picks of any subset, and one each for v1 and
	// v3 (a census taken for one subset stands for that subset alone).
	if n := asked.Load(); n != 3 {
		t.Fatalf("%d census requests within MaxAge, want 3", n)
	}
}

// A census stands for MaxAge; with no instance answering, a pick waits
// Wait (at once when nothing subscribes the census) and offers none; a
// census cut short by its context is not kept.
func TestCensusAgeAndSilence(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: 100 * time.Millisecond, Wait: 50 * time.Millisecond}
	ctx := context.Background()
	// Something subscribes the census that does not answer (a frozen
	// instance): the pick waits Wait. Nothing subscribes it (no
	// instance, or services that answer no census): it returns at once,
	// on nats-server's no responders.
	frozen := meshtest.Conn(t, b)
	sub, err := frozen.SubscribeSync(Subject("payments", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if err := frozen.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if id, ok := c.Pick(ctx, mux, nc, "payments", ""); ok {
		t.Fatalf("Pick with a silent instance = %q", id)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Pick with a silent instance returned after %v, before Wait", d)
	}
	sub.Unsubscribe()
	start = time.Now()
	if id, ok := c.Pick(ctx, mux, nc, "orders", ""); ok {
		t.Fatalf("Pick with no instance = %q", id)
	}
	if d := time.Since(start); d >= 50*time.Millisecond {
		t.Fatalf("Pick with nothing subscribing the census returned after %v, not at once", d)
	}
	asked := instance(t, meshtest.Conn(t, b), "orders", Answer{ID: "A", Addressable: true})
	if id, ok := c.Pick(ctx, mux, nc, "orders", ""); ok {
		t.Fatalf("Pick within MaxAge of an empty census = %q, want none (the census stands)", id)
	}
	time.Sleep(120 * time.Millisecond)
	if id, ok := c.Pick(ctx, mux, nc, "orders", ""); id != "A" || !ok {
		t.Fatalf("Pick after MaxAge = %q %v, want A", id, ok)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("%d census requests, want 1", n)
	}
	// Cut short: not kept, so the next pick asks again.
	time.Sleep(120 * time.Millisecond)
	done, cancel := context.WithCancel(ctx)
	cancel()
	c.Pick(done, mux, nc, "orders", "")
	if id, ok := c.Pick(ctx, mux, nc, "orders", ""); id != "A" || !ok {
		t.Fatalf("Pick after a census cut short = %q %v, want A", id, ok)
	}
}

// The responder answers only in the pair inbox of the subject's caller
// and the service: any other reply subject, or a caller token that is no
// name, gets nothing published.
func TestResponderAnswersOnlyItsCaller(t *testing.T) {
	b := meshtest.Broker(t)
	srv := meshtest.Conn(t, b)
	instance(t, srv, "orders", Answer{ID: "A", Addressable: true})
	spy := meshtest.Conn(t, b)
	got, err := spy.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ subject, reply string }{
		{Subject("orders", "web"), wire.PairInbox("gateway", "orders") + ".x"}, // another caller's inbox
		{Subject("orders", "web"), wire.PairInbox("web", "payments") + ".x"},   // web's inbox of another service
		{Subject("orders", "web"), wire.PairInbox("web", "orders")},            // no token after the pair
		{Subject("orders", "web"), wire.PairInbox("web", "orders") + ".*"},
		{Subject("orders", "web"), wire.PairInbox("web", "orders") + "..x"},
		{Subject("orders", "web"), "mesh.orders._.web.http.GET"},
		{Subject("orders", "web"), "$JS.API.STREAM.CREATE.X"},
		{Subject("orders", "web"), ""},
		{Subject("orders", "Web"), wire.PairInbox("Web", "orders") + ".x"},
	} {
		if err := spy.PublishMsg(&nats.Msg{Subject: tc.subject, Reply: tc.reply}); err != nil {
			t.Fatal(err)
		}
	}
	good := wire.PairInbox("web", "orders") + ".good"
	if err := spy.PublishRequest(Subject("orders", "web"), good, nil); err != nil {
		t.Fatal(err)
	}
	// Every request, then the one answer, in order: the answer comes last
	// and nothing else was published.
	for {
		m, err := got.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == good {
			break
		}
		if m.Subject != Subject("orders", "web") && m.Subject != Subject("orders", "Web") {
			t.Fatalf("published to %s: %q", m.Subject, m.Data)
		}
	}
}

// What a Census keeps is bounded: at most maxRolls censuses (the oldest
// dropped first), maxRolls services' suspects and maxRolls suspects a
// service; past a bound the newest is kept.
func TestCensusBounds(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: time.Hour}
	ctx := context.Background()
	for i := range maxRolls + 1 {
		// Nothing answers: each census ends at once, on no responders.
		c.Pick(ctx, mux, nc, "s"+strconv.Itoa(i), "")
	}
	c.mu.Lock()
	n, first, last := len(c.rolls), c.rolls[rollKey("s0", "")], c.rolls[rollKey("s"+strconv.Itoa(maxRolls), "")]
	c.mu.Unlock()
	if n != maxRolls || first != nil || last == nil {
		t.Fatalf("%d censuses kept (want %d), the oldest kept %v, the newest kept %v", n, maxRolls, first != nil, last != nil)
	}
	for i := range maxRolls + 1 {
		c.Suspect("orders", "ID"+strconv.Itoa(i))
		if i == 9 {
			if n := len(c.suspects["orders"]); n != 10 {
				t.Fatalf("%d suspects after 10, want 10", n)
			}
		}
	}
	if n := len(c.suspects["orders"]); n != 1 {
		t.Fatalf("%d suspects of one service after %d, want 1 (the set starts again at its bound)", n, maxRolls+1)
	}
	for i := range maxRolls + 1 {
		c.Suspect("s"+strconv.Itoa(i), "ID")
	}
	// orders and s0 to s4094 fill the map; s4095 starts it again.
	if n := len(c.suspects); n != 2 || c.suspects["s"+strconv.Itoa(maxRolls)] == nil {
		t.Fatalf("suspects of %d services after %d more, want 2, the newest among them", n, maxRolls+1)
	}
}
