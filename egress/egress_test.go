package egress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/testcert"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// hosts maps names ("ext.test:80") to the loopback servers that stand in
// for them: an agent's EgressDial, so no test resolves a name or leaves
// 127.0.0.0/8. A name it does not map fails as an unknown host does.
type hosts map[string]string

func (h hosts) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	to, ok := h[addr]
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("no such host %s (test)", addr)}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

// external is a plain-HTTP server outside the mesh: it answers "HOST
// PATH caller=MESH-CALLER", and counts its calls.
func external(t testing.TB, calls *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls != nil {
			calls.Add(1)
		}
		fmt.Fprintf(w, "%s %s caller=%s", r.Host, r.URL.Path, r.Header.Get(wire.HeaderCaller))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyClient serves a's HTTP proxy on loopback and returns a client that
// uses it as its HTTP_PROXY (and HTTPS_PROXY), trusting roots for TLS.
func proxyClient(t testing.TB, a *agent.Agent, roots *x509.CertPool) (*http.Client, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.ServeHTTPProxy(l) // until the agent shuts down
	proxy := &url.URL{Scheme: "http", Host: l.Addr().String()}
	tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, l.Addr().String()
}

// newTelemetry is telemetry for one test, shut down in t.Cleanup.
func newTelemetry(t *testing.T) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

const allowAny = `version: 1
services:
  web: {}
  orders: {}
`

// TestEgressAllowedAndDenied: through the agent's proxy, a host outside
// the mesh answers while the mesh file allows it (allow_any, the
// default), gets 403 egress-denied naming the host and the setting once
// the file says registry_only, and answers again once the file lists it,
// each version applying to the next call. The host sees its own name and
// nothing of the mesh (no Mesh-Caller).
func TestEgressAllowedAndDenied(t *testing.T) {
	srv := external(t, nil)
	m := agenttest.NewMesh(t, allowAny)
	web := m.Agent("web", "", nil, func(c *agent.Config) { c.EgressDial = hosts{"ext.test:80": srv.Listener.Addr().String()}.dial })
	client, _ := proxyClient(t, web, nil)

	if st, body, _ := get(t, client, "http://ext.test/hello"); st != 200 || body != "ext.test /hello caller=" {
		t.Fatalf("allow_any: %d %q, want 200 from the host, which sees its own name and no caller", st, body)
	}

	m.SetFile(allowAny + "egress: { mode: registry_only }\n")
	st, body, h := get(t, client, "http://ext.test/hello")
	if st != http.StatusForbidden || h.Get(wire.HeaderError) != string(wire.KindEgressDenied) {
		t.Fatalf("registry_only, not listed: %d %s %q, want 403 egress-denied", st, h.Get(wire.HeaderError), body)
	}
	for _, want := range []string{`"ext.test"`, "egress.hosts", "egress.mode"} {
		if !strings.Contains(body, want) {
			t.Errorf("egress-denied answer %q does not name %s", body, want)
		}
	}

	m.SetFile(allowAny + "egress:\n  mode: registry_only\n  hosts: { ext.test: {} }\n")
	if st, body, _ := get(t, client, "http://ext.test/again"); st != 200 || body != "ext.test /again caller=" {
		t.Fatalf("registry_only, listed: %d %q, want 200 from the host", st, body)
	}
}

// TestExampleComIsNoSubset is the regression of issue 19: through the
// agent's proxy, http://example.com/ was read as the subset "example" of
// a service "com" (503 "no instance of com@example"). It is a host
// outside the mesh, with a mesh file or without one.
func TestExampleComIsNoSubset(t *testing.T) {
	srv := external(t, nil)
	dial := hosts{"example.com:80": srv.Listener.Addr().String()}.dial
	b := meshtest.Broker(t)
	builtin := agenttest.Start(t, b, agent.Config{Service: "web", EgressDial: dial})
	m := agenttest.NewMesh(t, allowAny)
	withFile := m.Agent("web", "", nil, func(c *agent.Config) { c.EgressDial = dial })
	for name, a := range map[string]*agent.Agent{"built-in policy": builtin, "mesh file": withFile} {
		client, _ := proxyClient(t, a, nil)
		if st, body, h := get(t, client, "http://example.com/x"); st != 200 || body != "example.com /x caller=" {
			t.Errorf("%s: GET http://example.com/x = %d %s %q, want the host's 200", name, st, h.Get(wire.HeaderError), body)
		}
	}
}

// TestMeshNamesStayInTheMesh: a declared service, its subset and a name
// under the mesh domain still go over the mesh, and CONNECT to a mesh
// service is refused as before.
func TestMeshNamesStayInTheMesh(t *testing.T) {
	m := agenttest.NewMesh(t, "version: 1\nservices:\n  web: {}\n  orders: { subsets: [v2] }\n")
	m.Agent("orders", "v2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "orders v2") }))
	web := m.Agent("web", "", nil, func(c *agent.Config) { c.EgressDial = hosts{}.dial })
	client, addr := proxyClient(t, web, nil)
	for _, u := range []string{"http://orders/", "http://v2.orders/", "http://v2.orders.mesh/"} {
		if st, body, _ := get(t, client, u); st != 200 || body != "orders v2" {
			t.Errorf("GET %s = %d %q, want orders' answer", u, st, body)
		}
	}
	if st, _ := connect(t, addr, "orders:443"); st != "400" {
		t.Errorf("CONNECT orders:443 = %s, want 400", st)
	}
}

// TestTypoIsNoService: where the broker's permissions come from the mesh
// file (the agent authenticates), a bare name the file does not declare
// is no service: a call to "ordrs" leaves the mesh (here: allowed, and no
// such host), counted under "egress:_other", and never shows as a
// service "ordrs" in the agent's stats (natsmesh stat, the dashboard).
func TestTypoIsNoService(t *testing.T) {
	sec := meshtest.SecureConfig(t, false, "admin", "web")
	b := sec.Broker(t)
	f, err := policies.Parse("mesh.yaml", []byte(allowAny))
	if err != nil {
		t.Fatal(err)
	}
	tel := newTelemetry(t)
	web := agenttest.StartConn(t, sec.Conn(t, b, "web", nats.CustomInboxPrefix(wire.InboxPrefix("web"))),
		agent.Config{Service: "web", Policies: live.Static(f), Telemetry: tel, EgressDial: hosts{}.dial})
	client, _ := proxyClient(t, web, nil)
	if st, _, h := get(t, client, "http://ordrs/"); st != http.StatusServiceUnavailable || h.Get(wire.HeaderError) != string(wire.KindUpstreamRefused) {
		t.Errorf("GET http://ordrs/ = %d %s, want 503 upstream-refused (no such host)", st, h.Get(wire.HeaderError))
	}
	for _, e := range web.Stats().Outbound {
		if e.Callee != meshstat.EgressOther {
			t.Errorf("outbound edge to %q, want only %q", e.Callee, meshstat.EgressOther)
		}
	}
}

// connect sends CONNECT hostport to the proxy at addr and returns the
// status code of the answer and its Mesh-Error, closing the connection.
func connect(t *testing.T, addr, hostport string) (status, meshError string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostport, hostport)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", hostport, err)
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode), resp.Header.Get(wire.HeaderError)
}

// TestConnectTunnel: HTTPS through the proxy's CONNECT reaches a TLS
// server outside the mesh, end to end (the client checks the server's
// certificate: the agent only copies bytes), while the mesh file allows
// the host, and CONNECT gets 403 egress-denied once it does not.
func TestConnectTunnel(t *testing.T) {
	certFile, keyFile := testcert.SelfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls %s %s", r.Host, r.URL.Path)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	m := agenttest.NewMesh(t, allowAny+"egress:\n  mode: registry_only\n  hosts: { localhost: {} }\n")
	web := m.Agent("web", "", nil, func(c *agent.Config) {
		// The certificate names localhost: the client asks for it.
		c.EgressDial = hosts{"localhost:443": srv.Listener.Addr().String()}.dial
	})
	client, addr := proxyClient(t, web, roots)
	if st, body, _ := get(t, client, "https://localhost/secure"); st != 200 || body != "tls localhost /secure" {
		t.Fatalf("HTTPS through CONNECT: %d %q, want the TLS server's 200", st, body)
	}

	m.SetFile(allowAny + "egress: { mode: registry_only }\n")
	if st, kind := connect(t, addr, "localhost:443"); st != "403" || kind != string(wire.KindEgressDenied) {
		t.Fatalf("CONNECT to a host not listed: %s %s, want 403 egress-denied", st, kind)
	}
	client.CloseIdleConnections() // the tunnel still open would carry it
	if _, err := client.Get("https://localhost/secure"); err == nil {
		t.Fatal("HTTPS to a denied host succeeded")
	}
}

// TestEgressPolicyPerHost: a host the mesh file lists gets its policy
// (here: retries of an idempotent call the host answered 503), an
// unlisted one is sent once.
func TestEgressPolicyPerHost(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	m := agenttest.NewMesh(t, allowAny+`egress:
  hosts:
    listed.test:
      policy: { retries: { attempts: 3, backoff: 1ms } }
`)
	web := m.Agent("web", "", nil, func(c *agent.Config) {
		c.EgressDial = hosts{"listed.test:80": srv.Listener.Addr().String(), "unlisted.test:80": srv.Listener.Addr().String()}.dial
	})
	client, _ := proxyClient(t, web, nil)
	if st, body, _ := get(t, client, "http://listed.test/"); st != 200 || body != "ok" || calls.Load() != 2 {
		t.Fatalf("listed host: %d %q after %d calls, want 200 after a retry (2 calls)", st, body, calls.Load())
	}
	calls.Store(0)
	if st, _, _ := get(t, client, "http://unlisted.test/"); st != http.StatusServiceUnavailable || calls.Load() != 1 {
		t.Fatalf("unlisted host: %d after %d calls, want the host's 503, sent once", st, calls.Load())
	}
}

// TestEgressMetricsBounded: calls to hosts outside the mesh appear in
// /metrics and in the agent's stats (natsmesh stat, the dashboard) as
// external destinations: a listed host by its entry, every other host in
// one "egress:_other" series, however many there are; no host appears
// as a service, and a listed host's breaker is labelled by its entry.
func TestEgressMetricsBounded(t *testing.T) {
	srv := external(t, nil)
	tel := newTelemetry(t)
	m := agenttest.NewMesh(t, allowAny+"egress: { hosts: { ext.test: {} } }\n")
	dial := hosts{"ext.test:80": srv.Listener.Addr().String()}
	for i := range 20 {
		dial[fmt.Sprintf("h%d.example.net:80", i)] = srv.Listener.Addr().String()
	}
	web := m.Agent("web", "", nil, func(c *agent.Config) { c.EgressDial = dial.dial; c.Telemetry = tel })
	client, _ := proxyClient(t, web, nil)
	get(t, client, "http://ext.test/")
	for i := range 20 {
		if st, _, _ := get(t, client, fmt.Sprintf("http://h%d.example.net/", i)); st != 200 {
			t.Fatalf("h%d: %d", i, st)
		}
	}
	get(t, client, "http://example.com/") // not dialable: a failure, in the same series

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	page := rec.Body.String()
	callees := map[string]bool{}
	for line := range strings.SplitSeq(page, "\n") {
		if i := strings.Index(line, `callee="`); i >= 0 && strings.HasPrefix(line, "natsmesh_outbound_") {
			rest := line[i+len(`callee="`):]
			callees[rest[:strings.IndexByte(rest, '"')]] = true
		}
	}
	if want := map[string]bool{"egress:ext.test": true, "egress:_other": true}; fmt.Sprint(callees) != fmt.Sprint(want) {
		t.Errorf("callees in /metrics: %v, want %v", callees, want)
	}
	if !strings.Contains(page, `natsmesh_outbound_breaker_state{callee="egress:ext.test",caller="web"`) {
		t.Errorf("no breaker series for the listed host:\n%s", page)
	}

	edges := map[string]uint64{}
	for _, e := range web.Stats().Outbound {
		edges[e.Callee] += e.Requests
	}
	if want := map[string]uint64{"egress:ext.test": 1, "egress:_other": 21}; fmt.Sprint(edges) != fmt.Sprint(want) {
		t.Errorf("stats' outbound edges: %v, want %v", edges, want)
	}
}
