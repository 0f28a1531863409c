package pipeline

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestNotStartedAfterCallersDeadline (issue 21, item 2): a call that
// reaches the dispatch after its caller's deadline (Mesh-Start-By, past
// the clock skew tolerated) is not run, however much of its relative
// Mesh-Timeout is left (it sat queued: a frozen process, a full socket);
// one that arrives in time gets a local deadline no later than its
// caller's.
func TestNotStartedAfterCallersDeadline(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran atomic.Int32
	deadlines := make(chan time.Time, 1)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		ClockSkew: 50 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			ran.Add(1)
			d, ok := ctx.Deadline()
			if !ok {
				d = time.Time{}.Add(math.MaxInt64) // no deadline: never
			}
			deadlines <- d
			return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}}, nil
		}),
	})
	nc := rawConn(t, b, "web", "orders")
	call := func(startBy time.Time) *nats.Msg {
		h := nats.Header{wire.HeaderMethod: {http.MethodPost}, wire.HeaderPath: {"/pay"}, wire.HeaderTimeout: {"1h"},
			wire.HeaderStartBy: {strconv.FormatInt(startBy.UnixMilli(), 10)}}
		m, err := nc.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.POST", Header: h}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// Queued past its caller's deadline: not run, answered timeout.
	m := call(time.Now().Add(-2 * time.Second))
	if e := wire.ReplyError(m.Header); e == nil || e.Kind != wire.KindTimeout {
		t.Errorf("a call past its caller's deadline: %v, want a timeout error", m.Header)
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the service ran a call whose caller had given up (%d)", n)
	}
	// In time: run, with the caller's deadline (plus the skew), not an
	// hour from receipt.
	startBy := time.Now().Add(2 * time.Second)
	if m := call(startBy); wire.ReplyError(m.Header) != nil {
		t.Fatalf("a call in time: %v", m.Header)
	}
	d := <-deadlines
	if d.After(startBy.Add(time.Second)) {
		t.Errorf("local deadline %v after the caller's %v", d, startBy)
	}
}
