package traffic_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

func splitTo(subset string) string {
	return `
version: 1
services:
  web: {}
  inv:
    subsets: [v1, v2]
    policy:
      split: {` + subset + `: 100}
`
}

// TestLiveSplitChange applies a changed split through the bucket while
// the caller runs a few hundred calls a second: no call fails, and every
// call that starts a second after the apply follows the new split.
func TestLiveSplitChange(t *testing.T) {
	b := meshtest.Broker(t)
	js, err := jetstream.New(meshtest.Conn(t, b))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := live.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(yaml string) {
		t.Helper()
		f, err := policies.Parse("mesh.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Apply(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	apply(splitTo("v1"))
	src, err := live.WatchKV(ctx, js.Conn(), live.SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m := &agenttest.Mesh{T: t, B: b, Src: src}
	m.Agent("inv", "v1", agenttest.Named("v1", nil))
	m.Agent("inv", "v2", agenttest.Named("v2", nil))
	web := m.Client("web")

	type result struct {
		start  time.Time
		status int
		body   string
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(3 * time.Second)
	for range 12 { // 12 workers, one call every 40ms each: ~300 calls/s
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for now := range tick.C {
				if now.After(stop) {
					return
				}
				// The time the call is sent, not the tick's: a tick that
				// waited in its channel under load is older.
				sent := time.Now()
				st, body, _ := agenttest.Get(t, web, "http://inv/x")
				mu.Lock()
				results = append(results, result{sent, st, body})
				mu.Unlock()
			}
		}()
	}
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(results) < 250 { // the load runs before the change
			return errorf("%d calls so far", len(results))
		}
		return nil
	})
	applied := time.Now()
	apply(splitTo("v2"))
	wg.Wait()

	late := 0
	for _, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("a call failed during the change: %d %s", r.status, r.body)
		}
		if r.start.Before(applied) && r.body != "v1" {
			t.Errorf("before the change, a call went to %s", r.body)
		}
		if r.start.After(applied.Add(time.Second)) {
			late++
			if r.body != "v2" {
				t.Errorf("a call %v after the change went to %s", r.start.Sub(applied), r.body)
			}
		}
	}
	if len(results) < 200 || late < 50 { // far fewer than 300/s only on a starved machine

		t.Errorf("only %d calls (%d a second after the change): the load did not run", len(results), late)
	}
}

// TestConfigEndpoint reads GET /config of a sidecar running with a local
// mesh file, before and after a change.
func TestConfigEndpoint(t *testing.T) {
	b := meshtest.Broker(t)
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(splitTo("v1")), 0o600); err != nil {
		t.Fatal(err)
	}
	side := agenttest.StartSidecar(t, agent.SidecarConfig{
		Agent:  agent.Config{Service: "web", Logger: quiet},
		Conn:   meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("web"))),
		HTTP:   "127.0.0.1:0",
		Admin:  "127.0.0.1:0",
		Policy: path,
	})
	type configResponse struct { // live.ConfigResponse, as a client reads it
		Revision uint64
		Builtin  bool
		File     json.RawMessage
		Service  json.RawMessage
	}
	config := func(query string) configResponse {
		t.Helper()
		resp, err := http.Get("http://" + side.Addr("admin").String() + "/config" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c configResponse
		if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /config: %d %v", resp.StatusCode, err)
		}
		return c
	}
	if c := config(""); c.Revision != 1 || c.Builtin || len(c.File) == 0 {
		t.Errorf("GET /config = revision %d builtin %v, want revision 1 and the file", c.Revision, c.Builtin)
	}
	if err := os.WriteFile(path, []byte(splitTo("v2")), 0o600); err != nil {
		t.Fatal(err)
	}
	meshtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		c := config("?service=inv")
		var view struct {
			Policy struct{ Split map[string]int }
		}
		json.Unmarshal(c.Service, &view)
		if c.Revision != 2 || view.Policy.Split["v2"] != 100 {
			return errorf("GET /config?service=inv = revision %d %s", c.Revision, c.Service)
		}
		return nil
	})
}
