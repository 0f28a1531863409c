package securitytest

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestWatchForgedAnswers: a holder of orders' key subscribes orders' own
// inbox, where its agents' watches receive the store's answers
// (_INBOX_mesh.orders.JS.<watch>.<n>), so it learns their reply subjects;
// with the store's direct get as a deputy it can have JetStream put an
// answer of its choosing there (a 404, asking for a key that does not
// exist) before the store's own. Each forged answer must be ignored: the
// agent applies a new file within a second of its apply.
func TestWatchForgedAnswers(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		st := m.store(t)
		v1 := st.apply(t, parseFile(t, watchMesh("GET")))
		orders := startWatchingSidecar(t, m, "orders")
		waitRevision(t, orders, v1, time.Second)

		attacker := m.connect(t, "orders")
		var mu sync.Mutex
		sent := map[string]uint64{} // watch id -> the highest n forged
		forge := func(id string, n uint64) {
			mu.Lock()
			defer mu.Unlock()
			for k := sent[id] + 1; k <= n+8; k++ {
				if k <= n {
					continue
				}
				attacker.PublishRequest(directGet("no-such-key"), wire.PairInbox("orders", wire.PeerJS)+"."+id+"."+strconv.FormatUint(k, 10), nil)
				sent[id] = k
			}
		}
		if _, err := attacker.Subscribe(wire.PairInbox("orders", wire.PeerJS)+".>", func(msg *nats.Msg) {
			if msg.Header.Get("Status") != "" {
				return // its own forgery
			}
			toks := strings.Split(msg.Subject, ".")
			n, err := strconv.ParseUint(toks[len(toks)-1], 10, 64)
			if err != nil {
				return
			}
			forge(toks[len(toks)-2], n)
		}); err != nil {
			t.Fatal(err)
		}
		attacker.noViolations(t)
		// Make the watch ask, so the attacker hears its reply subject.
		if err := attacker.PublishRequest(directGet("mesh"), kvMesh, nil); err != nil {
			t.Fatal(err)
		}
		meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(sent) == 0 {
				return errNotYet
			}
			return nil
		})
		v2 := st.apply(t, parseFile(t, watchMesh("POST")))
		waitRevision(t, orders, v2, 2*time.Second)
		attacker.noViolations(t)
	})
}

// watchMesh is the shop's services with orders admitting web for method
// only.
func watchMesh(method string) string {
	return `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
        methods: [` + method + `]
`
}

type errString string

func (e errString) Error() string { return string(e) }

const errNotYet = errString("not yet")

// startWatchingSidecar starts service's sidecar with its generated key,
// watching the policies bucket, with an admin listener.
func startWatchingSidecar(t *testing.T, m *mesh, service string) *agent.Sidecar {
	t.Helper()
	s, err := agent.NewSidecar(agent.SidecarConfig{
		Agent:   agent.Config{Service: service, Logger: quiet},
		Connect: m.connectConfig(service),
		HTTP:    "127.0.0.1:0",
		Admin:   "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// waitRevision waits until the sidecar's agent applies revision rev.
func waitRevision(t *testing.T, s *agent.Sidecar, rev uint64, within time.Duration) {
	t.Helper()
	start := time.Now()
	meshtest.CheckFor(t, within, 5*time.Millisecond, func() error {
		if got := appliedRevision(t, s); got != rev {
			return errString("applied revision " + strconv.FormatUint(got, 10) + ", want " + strconv.FormatUint(rev, 10))
		}
		return nil
	})
	t.Logf("revision %d applied %v after", rev, time.Since(start))
}

// appliedRevision is the revision the sidecar's admin endpoint says its
// agent applies (GET /config), 0 for none.
func appliedRevision(t *testing.T, s *agent.Sidecar) uint64 {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr("admin").String() + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c live.ConfigResponse
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c.Revision
}
