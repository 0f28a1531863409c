package resilience

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// TestBreakerConfigsKept: the breaker configurations of each service are
// worked out once per mesh file, not at each listing, and started over
// only past maxStates services.
func TestBreakerConfigsKept(t *testing.T) {
	m := &middleware{states: map[stateKey]any{}}
	c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET", Path: "/"}
	ok := func() (*pipeline.Reply, error) {
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
	}
	if _, err := m.plan(c, "").send(context.Background(), senderFunc(ok), c); err != nil {
		t.Fatal(err)
	}
	same := func(a, b map[string]map[string]bool) bool {
		return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
	}
	if got := len(m.breakers()); got != 1 {
		t.Fatalf("%d breakers listed, want 1", got)
	}
	first := m.cfgs
	m.breakers()
	if !same(first, m.cfgs) {
		t.Error("a second listing worked the configurations out again")
	}
	for i := 0; len(m.cfgs) < maxStates; i++ {
		m.cfgs[fmt.Sprint("s", i)] = nil
	}
	m.breakers()
	if !same(first, m.cfgs) {
		t.Errorf("started over at %d services (the bound is %d)", maxStates, maxStates)
	}
	m.cfgs["one-more"] = nil
	if got := len(m.breakers()); got != 1 || same(first, m.cfgs) || len(m.cfgs) != 1 {
		t.Errorf("past the bound: %d breakers listed, %d services kept; want 1 and 1, started over", got, len(m.cfgs))
	}
}

type senderFunc func() (*pipeline.Reply, error)

func (f senderFunc) Send(context.Context, *pipeline.Call) (*pipeline.Reply, error) { return f() }
