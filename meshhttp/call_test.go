package meshhttp

import (
	"net/http"
	"testing"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// TestNewCallAnySubset: issue 17 item 2. A subset written as the
// subject's token is kept as "" in the call, as any subset is in memory;
// the subject still carries the token.
func TestNewCallAnySubset(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://orders/x", nil)
	c, err := NewCall(r, pipeline.Call{Service: "orders", Subset: wire.AnySubset, Caller: "web"}, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subset != "" || c.Dest() != "orders" || c.MeshSubject() != "mesh.orders._.web.http.GET" {
		t.Errorf("subset %q, dest %q, subject %q", c.Subset, c.Dest(), c.MeshSubject())
	}
}
