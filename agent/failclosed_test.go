package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

const failClosedMesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
`

// securedMesh is a broker with hand-written NKey users (meshtest.Secured)
// and its policy store, opened as the admin.
type securedMesh struct {
	sec   *meshtest.Secured
	b     *broker.Broker
	store *live.Store
}

func newSecuredMesh(t *testing.T, opts ...func(*broker.Config)) *securedMesh {
	t.Helper()
	m := &securedMesh{sec: meshtest.SecureConfig(t, true, "admin", "web", "orders")}
	m.b = m.sec.Broker(t, opts...)
	m.openStore(t)
	return m
}

func (m *securedMesh) openStore(t *testing.T) {
	t.Helper()
	nc := meshtest.Conn(t, m.b, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nkeyOption(t, m.sec.Seed("admin")))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if m.store, err = live.OpenStore(t.Context(), js); err != nil {
		t.Fatal(err)
	}
}

func nkeyOption(t *testing.T, seed string) nats.Option {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (m *securedMesh) apply(t *testing.T, src string) uint64 {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := m.store.Apply(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// sidecar starts service's sidecar, with its NKey, watching the bucket
// (cache: the policy cache file, or none). upstream, when not nil, is
// its local service; else it has an HTTP proxy.
func (m *securedMesh) sidecar(t *testing.T, service, cache string, upstream http.Handler, logs io.Writer) *Sidecar {
	t.Helper()
	return startSidecar(t, m.b, m.sec.Seed(service), service, cache, upstream, logs)
}

func startSidecar(t *testing.T, b *broker.Broker, seed, service, cache string, upstream http.Handler, logs io.Writer) *Sidecar {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	cfg := SidecarConfig{
		Agent:       Config{Service: service, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		Connect:     ConnectConfig{URL: b.ClientURL(), NKey: seed, Timeout: 5 * time.Second, Logger: quiet},
		Admin:       "127.0.0.1:0",
		PolicyCache: cache,
	}
	if upstream != nil {
		cfg.Agent.Upstream = listenHTTP(t, upstream)
	} else {
		cfg.HTTP = "127.0.0.1:0"
	}
	return runSidecar(t, cfg)
}

// runSidecar creates and starts a sidecar of cfg; it shuts down in
// t.Cleanup. Any failure ends the test.
func runSidecar(t *testing.T, cfg SidecarConfig) *Sidecar {
	t.Helper()
	s, err := NewSidecar(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

func listenHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	addr := listen(t, srv.Serve)
	t.Cleanup(func() { srv.Close() })
	return "http://" + addr
}

// readyz returns the sidecar's /readyz status and body.
func readyz(t *testing.T, s *Sidecar) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr("admin").String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// callOrders calls orders through web's proxy: the status and Mesh-Error.
func callOrders(t *testing.T, web *Sidecar) (int, string) {
	t.Helper()
	resp, err := proxyClient(web.Addr("HTTP proxy").String()).Get("http://orders/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(wire.HeaderError)
}

// TestFailClosed: agents that authenticate with an NKey, watching an
// empty bucket, serve no call: the caller's agent answers 503
// no-mesh-file at once, the callee's agent refuses a call sent to it raw
// the same way (its service sees nothing), and both say "no mesh file
// yet" on /readyz. Once a mesh file is applied, within a second, both
// serve it.
func TestFailClosed(t *testing.T) {
	m := newSecuredMesh(t)
	var served atomic.Int64
	var logs meshtest.Buffer
	orders := m.sidecar(t, "orders", "", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { served.Add(1) }), &logs)
	web := m.sidecar(t, "web", "", nil, nil)

	for name, s := range map[string]*Sidecar{"web": web, "orders": orders} {
		if code, body := readyz(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, "no mesh file yet") {
			t.Errorf("%s /readyz without a mesh file: %d %q", name, code, body)
		}
	}
	if code, kind := callOrders(t, web); code != http.StatusServiceUnavailable || kind != string(wire.KindNoMeshFile) {
		t.Errorf("web -> orders without a mesh file: %d %q, want 503 %s", code, kind, wire.KindNoMeshFile)
	}
	// Raw, as web (its NKey, replies in its pair inbox with orders):
	// orders' agent refuses.
	raw, err := Connect(t.Context(), "web", ConnectConfig{URL: m.b.ClientURL(), NKey: m.sec.Seed("web"), Timeout: 5 * time.Second, Logger: quiet,
		Options: []nats.Option{nats.CustomInboxPrefix(wire.PairInbox("web", "orders"))}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		reply, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}}, time.Second)
		if err != nil {
			return err // orders may not be in its queue group yet
		}
		if got := reply.Header.Get(wire.HeaderError); got != string(wire.KindNoMeshFile) {
			t.Fatalf("a raw call to orders without a mesh file: Mesh-Error %q, want %s", got, wire.KindNoMeshFile)
		}
		return nil
	})
	if n := served.Load(); n != 0 {
		t.Errorf("orders' service saw %d calls without a mesh file", n)
	}
	if l := logs.String(); !strings.Contains(l, "no mesh file yet") {
		t.Errorf("orders logged nothing about its missing mesh file:\n%s", l)
	}

	rev := m.apply(t, failClosedMesh)
	start := time.Now()
	meshtest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
		for name, s := range map[string]*Sidecar{"web": web, "orders": orders} {
			if code, body := readyz(t, s); code != http.StatusOK {
				return fmt.Errorf("%s /readyz: %d %q", name, code, body)
			}
		}
		return nil
	})
	t.Logf("both ready %v after the apply", time.Since(start))
	if code, kind := callOrders(t, web); code != http.StatusOK {
		t.Errorf("web -> orders with the mesh file: %d %q", code, kind)
	}
	if served.Load() != 1 {
		t.Errorf("orders' service saw %d calls, want 1", served.Load())
	}
	if l := logs.String(); !strings.Contains(l, "applied mesh file") || !strings.Contains(l, fmt.Sprintf("revision=%d", rev)) {
		t.Errorf("orders did not log the file it applied:\n%s", l)
	}
}

// TestFailClosedCache: an agent that authenticates starts with the last
// good mesh file it kept on disk when the store cannot give one (here:
// its broker has no JetStream at all), and serves with it; without one it
// serves nothing.
func TestFailClosedCache(t *testing.T) {
	dir := t.TempDir()
	cache := func(service string) string { return filepath.Join(dir, service, "mesh.json") }
	m := newSecuredMesh(t)
	m.apply(t, failClosedMesh)
	var served atomic.Int64
	upstream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { served.Add(1) })
	// First run: the file applied from the store is kept.
	orders := m.sidecar(t, "orders", cache("orders"), upstream, nil)
	web := m.sidecar(t, "web", cache("web"), nil, nil)
	if code, kind := callOrders(t, web); code != http.StatusOK {
		t.Fatalf("first run: web -> orders: %d %q", code, kind)
	}
	for _, s := range []*Sidecar{orders, web} {
		s.Shutdown(t.Context())
	}

	// The same users on a broker without JetStream: no store at all.
	b := m.sec.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
	var logs meshtest.Buffer
	orders = startSidecar(t, b, m.sec.Seed("orders"), "orders", cache("orders"), upstream, &logs)
	web = startSidecar(t, b, m.sec.Seed("web"), "web", cache("web"), nil, nil)
	if code, body := readyz(t, web); code != http.StatusOK {
		t.Fatalf("web with its kept mesh file: /readyz %d %q", code, body)
	}
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, kind := callOrders(t, web); code != http.StatusOK {
			return fmt.Errorf("web -> orders on the kept mesh file: %d %q", code, kind)
		}
		return nil
	})
	if l := logs.String(); !strings.Contains(l, "using the last good mesh file kept at "+cache("orders")) {
		t.Errorf("orders does not say it uses its kept file:\n%s", l)
	}

	// Without a kept file: nothing served.
	bare := startSidecar(t, b, m.sec.Seed("web"), "web", filepath.Join(dir, "none", "mesh.json"), nil, nil)
	if code, kind := callOrders(t, bare); code != http.StatusServiceUnavailable || kind != string(wire.KindNoMeshFile) {
		t.Errorf("web without a kept file: %d %q, want 503 %s", code, kind, wire.KindNoMeshFile)
	}
}

// TestPolicyOffRefusedWithCredentials: `--policy off` (the built-in policy
// only) is a configuration error for an agent that authenticates, and
// fine on the open broker.
func TestPolicyOffRefusedWithCredentials(t *testing.T) {
	m := newSecuredMesh(t)
	s, err := NewSidecar(SidecarConfig{
		Agent:   Config{Service: "web", Logger: quiet},
		Connect: ConnectConfig{URL: m.b.ClientURL(), NKey: m.sec.Seed("web"), Timeout: 5 * time.Second, Logger: quiet},
		HTTP:    "127.0.0.1:0",
		Policy:  live.Off,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "authenticates") {
		s.Shutdown(t.Context())
		t.Fatalf("Start with policy off and an NKey: %v, want ErrConfig", err)
	}
	open := meshtest.Broker(t)
	s, err = NewSidecar(SidecarConfig{
		Agent:   Config{Service: "web", Logger: quiet},
		Connect: ConnectConfig{URL: open.ClientURL(), Timeout: 5 * time.Second, Logger: quiet},
		HTTP:    "127.0.0.1:0",
		Policy:  live.Off,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("policy off on the open broker: %v", err)
	}
	s.Shutdown(t.Context())
}

// TestOpenBrokerKeepsBuiltinPolicy: on the open broker an agent with an
// empty bucket serves with the built-in policy, as before.
func TestOpenBrokerKeepsBuiltinPolicy(t *testing.T) {
	b := meshtest.Broker(t)
	upstream := echoServer(t, "orders-1")
	orders, err := NewSidecar(SidecarConfig{Agent: Config{Service: "orders", Upstream: upstream.URL, Logger: quiet},
		Connect: ConnectConfig{URL: b.ClientURL(), Logger: quiet}, Admin: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := orders.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer orders.Shutdown(context.Background())
	web, err := NewSidecar(SidecarConfig{Agent: Config{Service: "web", Logger: quiet},
		Connect: ConnectConfig{URL: b.ClientURL(), Logger: quiet}, HTTP: "127.0.0.1:0", Admin: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := web.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer web.Shutdown(context.Background())
	if code, body := readyz(t, web); code != http.StatusOK {
		t.Errorf("/readyz on the open broker without a mesh file: %d %q", code, body)
	}
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, kind := callOrders(t, web); code != http.StatusOK {
			return fmt.Errorf("web -> orders: %d %q", code, kind)
		}
		return nil
	})
}

// TestBuiltinPolicyOptIn: an agent built by a program with no Policies on
// a connection that authenticates is a configuration error, unless
// Config.BuiltinPolicy opts in, which Start warns about; on the open
// broker the built-in policy needs no opt-in. A sidecar with --policy off
// follows the same rule.
func TestBuiltinPolicyOptIn(t *testing.T) {
	sec := meshtest.SecureConfig(t, false, "admin", "web")
	secured := sec.Broker(t)
	open := meshtest.Broker(t)
	f, err := policies.Parse("mesh.yaml", []byte(failClosedMesh))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		b        *broker.Broker
		nkey     bool
		policies *live.Source
		builtin  bool
		wantErr  string // "" for none
		wantWarn string // "" for no warning
	}{
		{"authenticates, no policies", secured, true, nil, false, "Config.BuiltinPolicy", ""},
		{"authenticates, built-in policy opted in", secured, true, nil, true, "", "only the broker's permissions decide"},
		{"authenticates, a mesh file", secured, true, live.Static(f), false, "", ""},
		{"open broker, no policies", open, false, nil, false, "", "without authentication"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []nats.Option
			if tc.nkey {
				opts = append(opts, nkeyOption(t, sec.Seed("web")))
			}
			nc := meshtest.Conn(t, tc.b, append(opts, nats.CustomInboxPrefix(wire.InboxPrefix("web")))...)
			var logs meshtest.Buffer
			a, err := New(nc, Config{Service: "web", Policies: tc.policies, BuiltinPolicy: tc.builtin, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tc.wantErr != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want ErrConfig naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer a.Shutdown(context.Background())
			warned := strings.Contains(logs.String(), "level=WARN")
			if tc.wantWarn == "" && warned || tc.wantWarn != "" && !strings.Contains(logs.String(), tc.wantWarn) {
				t.Errorf("want warning %q; logs: %q", tc.wantWarn, logs.String())
			}
		})
	}

	// A sidecar: --policy off on the secured broker, opted in.
	s, err := NewSidecar(SidecarConfig{
		Agent:   Config{Service: "web", BuiltinPolicy: true, Logger: quiet},
		Connect: ConnectConfig{URL: secured.ClientURL(), NKey: sec.Seed("web"), Timeout: 5 * time.Second, Logger: quiet},
		HTTP:    "127.0.0.1:0",
		Policy:  live.Off,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("policy off with an NKey and BuiltinPolicy: %v", err)
	}
	s.Shutdown(t.Context())
}
