package securitytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/wire"
)

// TestDiscoveryForgery: a service's key answers discovery as itself only.
// It cannot receive targeted discovery for another service nor send
// discovery requests (only the admin and the bridge may), and, though it
// sees the admin's broadcast requests ($SRV.STATS, what `natsmesh stat`
// sends) and may answer those with anything (docs/security.md: readers
// treat the name in an answer as a claim), it cannot answer the admin's
// request to one service ($SRV.STATS.inventory), which it never sees.
//
// On the code before the fix (97c1d80), the reply subject of each
// gathering was the admin's discovery inbox and a nuid: sequential, with a
// fixed increment, so two broadcast requests told orders the reply
// subject of the next request, targeted or not, and its made-up inventory
// answer was in the admin's sample of inventory (the test failed).
func TestDiscoveryForgery(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		t.Run("refused", func(t *testing.T) {
			orders := m.connect(t, "orders")
			for _, s := range []string{"$SRV.PING.inventory", "$SRV.STATS.inventory", "$SRV.INFO.inventory.x", "$SRV.>"} {
				if _, err := orders.SubscribeSync(s); err != nil {
					t.Fatal(err)
				}
				orders.waitViolation(t, s)
			}
			for _, s := range []string{"$SRV.PING", "$SRV.STATS", "$SRV.INFO.inventory"} {
				if err := orders.PublishRequest(s, wire.PairInbox("orders", wire.PeerSRV)+".x", nil); err != nil {
					t.Fatal(err)
				}
				orders.waitViolation(t, s)
			}
		})

		t.Run("targeted", func(t *testing.T) {
			up := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(up.Close)
			inv := startAgent(t, m, agent.Config{Service: "inventory", Upstream: up.URL})
			admin := m.connect(t, accounts.DefaultAdmin)
			orders := m.connect(t, "orders")
			var mu sync.Mutex
			var seen []string // the reply subjects of the admin's broadcasts
			if _, err := orders.Subscribe("$SRV.STATS", func(msg *nats.Msg) {
				mu.Lock()
				seen = append(seen, msg.Reply)
				mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
			orders.noViolations(t)
			ctx := context.Background()
			for range 2 {
				if _, err := meshstat.Gather(ctx, admin.Conn, meshstat.GatherOptions{Quiet: 50 * time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 2 }, "orders sees the admin's broadcasts")
			candidates := nextSubjects(seen[0], seen[1], 8)
			forged := []byte(`{"type":"io.nats.micro.v1.stats_response","name":"inventory","id":"forged","started":"2020-01-01T00:00:00Z","endpoints":[]}`)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // until the gathering ends, into each candidate
				defer wg.Done()
				for {
					for _, s := range candidates {
						orders.Publish(s, forged)
					}
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			sample, err := meshstat.Gather(ctx, admin.Conn, meshstat.GatherOptions{Subject: "$SRV.STATS.inventory", Quiet: 200 * time.Millisecond})
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, snap := range sample.Snapshots {
				ids = append(ids, snap.ID)
			}
			if len(ids) != 1 || ids[0] != inv.ID() || len(sample.Problems) != 0 {
				if len(ids) > 3 {
					ids = append(ids[:3], "…")
				}
				t.Fatalf("the admin's sample of inventory: %d answers %q, problems %q; want only %s's", len(sample.Snapshots), ids, sample.Problems, inv.ID())
			}
			orders.noViolations(t)
		})
	})
}

// nextSubjects returns the subjects that would follow a and b if their
// last 10 characters were a nuid's sequence (base 62, a fixed increment):
// n of them, after b.
func nextSubjects(a, b string, n int) []string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	if len(a) != len(b) || len(a) < 10 {
		return nil
	}
	seq := func(s string) int64 {
		var v int64
		for _, c := range s[len(s)-10:] {
			v = v*62 + int64(strings.IndexRune(digits, c))
		}
		return v
	}
	inc := seq(b) - seq(a)
	if inc <= 0 {
		return nil // no nuids: nothing to tell from them
	}
	var out []string
	for k := int64(1); k <= int64(n); k++ {
		v := seq(b) + k*inc
		var buf [10]byte
		for i := 9; i >= 0; i-- {
			buf[i] = digits[v%62]
			v /= 62
		}
		out = append(out, b[:len(b)-10]+string(buf[:]))
	}
	return out
}
