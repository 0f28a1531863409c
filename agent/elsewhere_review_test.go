package agent

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestAddressedSubsetCallCountedOnItsEndpoint (review of decision 181): a
// call to subset v2 that a silent instance left unanswered is sent again
// to a live v2 instance by its instance subject. The instance must count
// it as the v2 call it is, on its v2 endpoint ($SRV.STATS; the inbound
// metrics' subset label is taken from the same Call.Subset), as it counts
// the same call delivered by the v2 queue group. The instance subject
// (mesh-inst.<service>.<id>...) carries no subset, so the callee reads
// Subset "" and counts it on the any-instance endpoint.
func TestAddressedSubsetCallCountedOnItsEndpoint(t *testing.T) {
	b := meshtest.Broker(t)
	orders := startAgent(t, b, Config{Service: "orders", Subset: "v2"}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("live")) }))
	})
	held := make(chan *nats.Msg, 64)
	for range 3 {
		nc := meshtest.ServiceConn(t, b, "orders")
		if _, err := nc.ChanQueueSubscribe(wire.Prefix+".orders.v2.>", "orders.v2", held); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  web: {}\n  orders: { subsets: [v2] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	web := startAgent(t, b, Config{Service: "web", Policies: live.Static(f)})
	client := &http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}
	const calls = 6
	for i := range calls {
		req, _ := http.NewRequest(http.MethodGet, "http://v2.orders/x", nil)
		req.Header.Set(wire.HeaderTimeout, "3s")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %s", i, resp.Status)
		}
	}
	if len(held) == 0 {
		t.Fatal("no call went to a silent instance: the test shows nothing")
	}
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		anyEp, v2 := orders.endpoints[0].Stats(), orders.endpoints[1].Stats()
		if anyEp.NumRequests != 0 || v2.NumRequests != calls {
			return fmt.Errorf("endpoint %s counted %d calls, %s %d; want all %d v2 calls on %s (%d were sent again to the instance)",
				anyEp.Name, anyEp.NumRequests, v2.Name, v2.NumRequests, calls, v2.Name, len(held))
		}
		return nil
	})
}
