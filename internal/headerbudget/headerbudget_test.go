package headerbudget

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/peer"
)

// TestBudget: a budget takes what fits and refuses what does not, taking
// nothing then; Hold finds a connection's budget in its context or in its
// peer's address, and holds nothing without one.
func TestBudget(t *testing.T) {
	b := New(100)
	if !b.Take(60) || b.Take(50) || b.Held() != 60 || !b.Take(40) {
		t.Fatalf("take 60, 50 (refused), 40: held %d", b.Held())
	}
	b.Give(100)
	if b.Held() != 0 {
		t.Fatalf("held %d after giving all back", b.Held())
	}
	(*Budget)(nil).Give(5) // no budget: nothing to give back

	ctx := NewContext(context.Background())
	got, ok := Hold(ctx, Max)
	if !ok || got == nil || got.Held() != Max {
		t.Fatalf("Hold(Max) on a new connection: %v %v", got, ok)
	}
	if _, ok := Hold(ctx, 1); ok {
		t.Fatal("Hold past the budget succeeded")
	}
	if got, ok := Hold(context.Background(), 1<<40); !ok || got != nil {
		t.Fatalf("Hold without a budget: %v %v", got, ok)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bl := Listen(l)
	go func() {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err := bl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pctx := peer.NewContext(context.Background(), &peer.Peer{Addr: c.RemoteAddr()})
	if got, ok := Hold(pctx, 10); !ok || got == nil || got.Held() != 10 {
		t.Fatalf("Hold by the peer's address: %v %v", got, ok)
	}
	if c.RemoteAddr().String() == "" || c.RemoteAddr().Network() != "tcp" {
		t.Errorf("the remote address reads %q %q", c.RemoteAddr().Network(), c.RemoteAddr())
	}
}

// TestRequestSize counts what HTTP/2 counts: each field's name, value
// and 32 bytes.
func TestRequestSize(t *testing.T) {
	r := httptest.NewRequest("GET", "http://orders/a?b=1", nil)
	r.Header = http.Header{"X-A": {"1", "22"}}
	want := int64((3 + 1 + 32) + (3 + 2 + 32) + 4*(len(":authority")+32) + len("GET") + len("http") + len("orders") + len("/a") + len("b=1"))
	if got := RequestSize(r); got != want {
		t.Errorf("RequestSize = %d, want %d", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { RequestSize(r) }); n != 0 {
		t.Errorf("RequestSize allocates %v times", n)
	}
}
