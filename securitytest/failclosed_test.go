package securitytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// failClosedMesh lets web call orders, GET only.
const failClosedMesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
        methods: [GET]
`

// TestFailClosed: issue 16's sixth attack. On the code before, an agent
// that started with no mesh file (the bucket empty, purged, or its broker
// down) applied the built-in policy: no allow lists, no path rules, no
// rate limits (a gateway path rule went from 403 to 200 after the bucket
// was purged and two agents restarted). Now an agent that authenticates
// serves nothing until it has a mesh file: calls, outbound and inbound,
// are answered no-mesh-file (503) and /readyz is 503; with the last good
// file kept on disk it serves that one.
//
// Package agent's TestFailClosed and TestFailClosedCache test the same
// on a hand-written configuration (meshtest.SecureConfig); here the
// sidecars run on the generated configuration, in both modes, with their
// generated NKey or creds: with an empty bucket, and with the broker that
// held the bucket gone (the mesh's other broker has no JetStream), with
// and without a kept file; and after the key's purge.
func TestFailClosed(t *testing.T) {
	f := parseFile(t, failClosedMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		var served atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served.Add(1) }))
		t.Cleanup(up.Close)
		cache := t.TempDir()
		cacheOf := func(service string) string { return filepath.Join(cache, service, "mesh.json") }

		t.Run("empty bucket", func(t *testing.T) {
			st := m.store(t) // the bucket, with no file
			orders := m.sidecar(t, "orders", up.URL, cacheOf("orders"))
			web := m.sidecar(t, "web", "", cacheOf("web"))
			refusesAll(t, m, web, orders, &served)

			rev := st.apply(t, f)
			start := time.Now()
			waitRevision(t, orders, rev, time.Second)
			waitRevision(t, web, rev, time.Second)
			t.Logf("both apply revision %d within %v", rev, time.Since(start))
			if code, kind := get(t, web, "orders"); code != http.StatusOK {
				t.Fatalf("web -> orders with the mesh file: %d %s", code, kind)
			}
			if n := served.Swap(0); n != 1 {
				t.Fatalf("orders' upstream served %d calls, want 1", n)
			}
			for _, s := range []*agent.Sidecar{orders, web} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s.Shutdown(ctx)
				cancel()
			}

			// The probe's sequence: the key purged, agents restarted
			// (without a kept file).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := st.KV().Purge(ctx, "mesh"); err != nil {
				t.Fatal(err)
			}
			orders = m.sidecar(t, "orders", up.URL, "")
			web = m.sidecar(t, "web", "", "")
			refusesAll(t, m, web, orders, &served)
		})

		// The broker that held the bucket is gone; the mesh's other
		// broker (the same configuration, no JetStream) answers no direct
		// get.
		m.b.Shutdown(context.Background())
		m.b = m.broker(t, func(c *broker.Config) { c.NoJetStream = true })

		t.Run("store down, no kept file", func(t *testing.T) {
			orders := m.sidecar(t, "orders", up.URL, filepath.Join(t.TempDir(), "none.json"))
			web := m.sidecar(t, "web", "", filepath.Join(t.TempDir(), "none.json"))
			refusesAll(t, m, web, orders, &served)
		})

		t.Run("store down, the kept file", func(t *testing.T) {
			orders := m.sidecar(t, "orders", up.URL, cacheOf("orders"))
			web := m.sidecar(t, "web", "", cacheOf("web"))
			// Start does not wait for the first health check: ready
			// once it passed (the upstream is up), on the kept file.
			for _, s := range []*agent.Sidecar{orders, web} {
				meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
					if code, body := readyz(t, s); code != http.StatusOK {
						return fmt.Errorf("/readyz with the kept file: %d %q", code, body)
					}
					return nil
				})
			}
			meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
				if code, kind := get(t, web, "orders"); code != http.StatusOK {
					return fmt.Errorf("web -> orders on the kept file: %d %s", code, kind)
				}
				return nil
			})
			// The kept file's allow list holds: web may GET only.
			if code, kind := do(t, web, http.MethodPost, "orders"); code != http.StatusForbidden || kind != string(wire.KindForbidden) {
				t.Fatalf("web POST orders on the kept file: %d %s, want 403 forbidden", code, kind)
			}
		})
	})
}

// refusesAll checks that web and orders, which have no mesh file, serve
// nothing: not ready, web's call answered no-mesh-file by web's agent, a
// raw call as web answered no-mesh-file by orders' agent, and orders'
// upstream never called.
func refusesAll(t *testing.T, m *mesh, web, orders *agent.Sidecar, served *atomic.Int64) {
	t.Helper()
	for name, s := range map[string]*agent.Sidecar{"web": web, "orders": orders} {
		if code, body := readyz(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, "no mesh file") {
			t.Errorf("%s /readyz without a mesh file: %d %q", name, code, body)
		}
	}
	if code, kind := get(t, web, "orders"); code != http.StatusServiceUnavailable || kind != string(wire.KindNoMeshFile) {
		t.Errorf("web -> orders without a mesh file: %d %q, want 503 %s", code, kind, wire.KindNoMeshFile)
	}
	raw := m.connect(t, "web")
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		reply := wire.PairInbox("web", "orders") + "." + nats.NewInbox()[len("_INBOX."):]
		sub, err := raw.SubscribeSync(reply)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		raw.PublishMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Reply: reply,
			Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}})
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			return err // orders may not be in its queue group yet
		}
		if got := msg.Header.Get(wire.HeaderError); got != string(wire.KindNoMeshFile) {
			t.Fatalf("a raw call to orders without a mesh file: Mesh-Error %q, want %s", got, wire.KindNoMeshFile)
		}
		return nil
	})
	raw.noViolations(t)
	if n := served.Load(); n != 0 {
		t.Errorf("orders' upstream served %d calls without a mesh file", n)
	}
}

// sidecar starts service's sidecar on the mesh's broker with its
// generated key, watching the policies bucket and keeping the last good
// file in cache; upstream "" gives it an HTTP proxy instead of a local
// service. It has an admin listener.
func (m *mesh) sidecar(t *testing.T, service, upstream, cache string) *agent.Sidecar {
	t.Helper()
	cfg := agent.SidecarConfig{
		Agent:       agent.Config{Service: service, Upstream: upstream, Logger: quiet},
		Connect:     m.connectConfig(service),
		Admin:       "127.0.0.1:0",
		PolicyCache: cache,
	}
	if upstream == "" {
		cfg.HTTP = "127.0.0.1:0"
	}
	return agenttest.StartSidecar(t, cfg)
}

// readyz returns the sidecar's /readyz status and body.
func readyz(t *testing.T, s *agent.Sidecar) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr("admin").String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// get calls service with GET / through the sidecar's HTTP proxy: the
// status and Mesh-Error.
func get(t *testing.T, s *agent.Sidecar, service string) (int, string) {
	t.Helper()
	return do(t, s, http.MethodGet, service)
}

func do(t *testing.T, s *agent.Sidecar, method, service string) (int, string) {
	t.Helper()
	proxy, _ := url.Parse("http://" + s.Addr("HTTP proxy").String())
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy), DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, "http://"+service+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(wire.HeaderError)
}
