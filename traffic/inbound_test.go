package traffic_test

import (
	"net/http"
	"testing"

	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestRateLimitPerCaller(t *testing.T) {
	m := agenttest.NewMesh(t, `
version: 1
services:
  greedy: {}
  polite: {}
  pay:
    inbound:
      rate_limit: {per_caller: 2, per: 1s, burst: 2}
`)
	m.Agent("pay", "", agenttest.Named("pay", nil))
	greedy, polite := m.Client("greedy"), m.Client("polite")

	limited := 0
	for range 40 {
		st, _, h := agenttest.Get(t, greedy, "http://pay/")
		switch st {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			if h.Get("Retry-After") == "" || h.Get(wire.HeaderError) != string(wire.KindRateLimited) {
				t.Fatalf("429 without Retry-After or rate-limited: %v", h)
			}
		default:
			t.Fatalf("got %d", st)
		}
	}
	// 3 at once (the rate's one and the burst's two), then 2 a second:
	// however slow the machine, most of 40 calls are refused.
	if limited < 20 {
		t.Errorf("%d of 40 calls over the limit were refused, want most", limited)
	}
	// Another caller has a limit of its own.
	for range 3 {
		if st, _, _ := agenttest.Get(t, polite, "http://pay/"); st != http.StatusOK {
			t.Fatalf("polite caller got %d", st)
		}
	}
}
