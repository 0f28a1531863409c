package securitytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// (_INBOX_mesh.orders.JS.<watch>.…), so it learns the reply subjects of
// their requests; with the store's direct get as a deputy it can have
// JetStream put an answer of its choosing under them (a 404, by asking for
// a key that does not exist) before the store answers. On the code before
// the fix (commit 97c1d80), whose reply subjects ended in a counter,
// forging the next few kept an agent on its old file for as long as the
// attacker went on (the test failed: revision 1 still held a second after
// revision 2 was applied; the watch gives up asking after 2s, and its
// next poll's answer is forged too). Each request's reply subject now ends
// in a random nonce, and the agent applies a new file within a second.
func TestWatchForgedAnswers(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m, st, orders := watchingSidecar(t, md, "orders")

		attacker := m.connect(t, "orders")
		inbox := wire.PairInbox("orders", wire.PeerJS) + "."
		var mu sync.Mutex
		var heard, forged int
		sent := map[string]bool{}
		// On each of the store's answers, forge the answers to the next
		// requests the watch would make if its reply subjects could be
		// told from the last one: the counter plus one to eight (with
		// the last nonce, if any; only eight, as the watch buffers few
		// answers).
		forge := func(id, last string) {
			n, nonce, _ := strings.Cut(last, "-")
			k, err := strconv.ParseUint(n, 10, 64)
			if err != nil {
				return
			}
			for i := k + 1; i <= k+8; i++ {
				tok := strconv.FormatUint(i, 10)
				if nonce != "" {
					tok += "-" + nonce
				}
				if reply := inbox + id + "." + tok; !sent[reply] {
					sent[reply] = true
					attacker.PublishRequest(directGet("no-such-key"), reply, nil)
				}
			}
		}
		if _, err := attacker.Subscribe(inbox+">", func(msg *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if msg.Header.Get("Status") == "404" {
				forged++ // JetStream put the attacker's 404 there
				return
			}
			heard++
			toks := strings.Split(strings.TrimPrefix(msg.Subject, inbox), ".")
			if len(toks) == 2 {
				forge(toks[0], toks[1])
			}
		}); err != nil {
			t.Fatal(err)
		}
		attacker.noViolations(t)
		// A write makes the watch ask, so the attacker hears a reply
		// subject.
		waitRevision(t, orders, st.apply(t, parseFile(t, watchMesh("HEAD"))), time.Second)
		meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if heard == 0 || forged == 0 {
				return fmt.Errorf("heard %d answers of the store, forged %d", heard, forged)
			}
			return nil
		})
		v2 := st.apply(t, parseFile(t, watchMesh("POST")))
		waitRevision(t, orders, v2, time.Second)
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

// watchingSidecar starts a mesh of the shop in mode md, applies
// watchMesh("GET") to its store and starts service's sidecar (an HTTP
// proxy), waiting until it holds that file within a second.
func watchingSidecar(t *testing.T, md mode, service string) (m *mesh, st *store, s *agent.Sidecar) {
	t.Helper()
	m = newMesh(t, md, shopFile(t))
	st = m.store(t)
	v1 := st.apply(t, parseFile(t, watchMesh("GET")))
	s = m.sidecar(t, service, "", "")
	waitRevision(t, s, v1, time.Second)
	return m, st, s
}

// waitRevision waits until the sidecar's agent applies revision rev.
func waitRevision(t *testing.T, s *agent.Sidecar, rev uint64, within time.Duration) {
	t.Helper()
	start := time.Now()
	meshtest.CheckFor(t, within, 5*time.Millisecond, func() error {
		if got := appliedRevision(t, s); got != rev {
			return fmt.Errorf("applied revision %d, want %d", got, rev)
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

// TestWatchForgedCues: every service may have JetStream's direct get
// answer on the subject of the mesh file's writes ($KV.natsmesh-policies.
// mesh), which every watcher of the account subscribes: the stored file
// with JetStream's headers, the same bare ({"no_hdr":true}), or a 404
// (a key that does not exist). A write heard is a cue to ask the store,
// so on the code before the fix (97c1d80) one message of orders made
// every watcher of the account read the whole mesh file (a 404, for 2s
// more): about a thousand reads a second of each watcher for a thousand
// messages of orders (the test failed: 288 requests for 200 cues). A
// watcher now asks only for a write that is one (no JetStream or status
// header) of a file other than the one it holds; a genuine write is
// applied as before.
func TestWatchForgedCues(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m, st, web := watchingSidecar(t, md, "web")
		// web's key sees its watch's requests answered.
		observer := m.connect(t, "web")
		var fetches atomic.Int64
		if _, err := observer.Subscribe(wire.PairInbox("web", wire.PeerJS)+".>", func(*nats.Msg) { fetches.Add(1) }); err != nil {
			t.Fatal(err)
		}
		observer.noViolations(t)

		attacker := m.connect(t, "orders")
		const cues = 200
		// At the attacker's pace, one cue every 2ms (a burst would be
		// heard as one: the watch asks once for the writes heard while
		// it was asking).
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := range cues {
			<-tick.C
			var err error
			switch i % 3 {
			case 0:
				err = attacker.PublishRequest(directGet("mesh"), kvMesh, nil)
			case 1:
				err = attacker.PublishRequest(directGet("mesh"), kvMesh, []byte(`{"no_hdr":true}`))
			case 2:
				err = attacker.PublishRequest(directGet("no-such-key"), kvMesh, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		attacker.noViolations(t)
		// A genuine write after them, heard after them: once it is
		// applied, the watch has heard every cue.
		v2 := st.apply(t, parseFile(t, watchMesh("POST")))
		// The bound is generous (a loaded 2-core machine runs this
		// suite): what is checked is the count, once the write is in.
		waitRevision(t, web, v2, 10*time.Second)
		if n := fetches.Load(); n > cues/10 {
			t.Fatalf("%d forged cues made web's watch ask the store %d times", cues, n)
		}
		t.Logf("%d forged cues, then a write: web's watch asked the store %d times", cues, fetches.Load())
	})
}

// TestWatchFlood: a holder of orders' key learns the reply subjects of
// its agents' watches (it subscribes orders' inbox) and can have
// JetStream's direct get answer under them as fast as JetStream answers,
// on subjects no request waits on. On the code before the fix (ceb4571),
// the watch received its answers on one subscription of all its reply
// subjects, whose buffer the flood filled, so the store's answer was
// dropped and the agent kept its old file while the flood went on (the
// test failed: revision 2 held 2s after revision 3 was applied, while a
// flood of the same size on another subject delayed it by milliseconds).
// Each request now has a subscription of its own, on its own subject.
func TestWatchFlood(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m, st, orders := watchingSidecar(t, md, "orders")

		attacker := m.connect(t, "orders")
		inbox := wire.PairInbox("orders", wire.PeerJS) + "."
		var mu sync.Mutex
		var watch string
		if _, err := attacker.Subscribe(inbox+">", func(msg *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if id, _, ok := strings.Cut(strings.TrimPrefix(msg.Subject, inbox), "."); ok && msg.Header.Get("Status") == "" {
				watch = id
			}
		}); err != nil {
			t.Fatal(err)
		}
		attacker.noViolations(t)
		waitRevision(t, orders, st.apply(t, parseFile(t, watchMesh("HEAD"))), time.Second)
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return watch != "" }, "the attacker hears the watch's reply subject")

		target := inbox + watch + ".flood"
		// The attacker counts its flood as it lands.
		var landed atomic.Int64
		counter, err := attacker.Subscribe(target, func(*nats.Msg) { landed.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		counter.SetPendingLimits(-1, -1)
		for range 2 {
			flooder := m.connect(t, "orders")
			defer meshtest.Repeat(0, func() bool {
				return flooder.PublishRequest(directGet("no-such-key"), target, nil) == nil
			})()
		}
		// The flood under way (on the code before, in the watch's buffer).
		waitFor(t, func() bool { return landed.Load() > 500 }, "the flood lands")
		v3 := st.apply(t, parseFile(t, watchMesh("POST")))
		waitRevision(t, orders, v3, 2*time.Second)
	})
}
