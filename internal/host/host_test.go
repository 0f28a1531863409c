package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/host"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of the tests' own HTTP clients.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

var quiet = slog.New(slog.DiscardHandler)

// freeAddr returns an address nothing listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// closed reports whether nothing accepts on addr.
func closed(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err != nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// nowhere is a part that would connect to an address nothing listens on,
// trying for a minute.
func nowhere(t *testing.T, name string, listeners ...host.Listener) host.Part {
	return host.Part{
		Name:      name,
		Connect:   natsconn.Config{URL: "nats://" + freeAddr(t), Timeout: time.Minute, Logger: quiet},
		Listeners: listeners,
		Build:     func(host.Env) (host.Component, error) { return nil, errors.New("never built") },
	}
}

// TestNewDoesNoIO: New with a broker nobody runs, a mesh file that does
// not exist and listener addresses returns at once, listening on none of
// them and starting no goroutine; Shutdown of a host never started is a
// no-op, and Start after it is refused.
func TestNewDoesNoIO(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	proxy, adm := freeAddr(t), freeAddr(t)
	serve := func(net.Listener) error { return nil }
	begin := time.Now()
	h, err := host.New(host.Config{
		Parts:  []host.Part{nowhere(t, "web", host.Listener{Purpose: "HTTP proxy", Addr: proxy, Serve: serve})},
		Admin:  adm,
		Policy: host.Policy{Path: filepath.Join(t.TempDir(), "none.yaml")},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("New took %v", d)
	}
	for _, a := range []string{proxy, adm} {
		if !closed(a) {
			t.Errorf("New listens on %s", a)
		}
	}
	if h.Addr("web", "HTTP proxy") != nil || h.AdminAddr() != nil || h.Conn("web") != nil {
		t.Error("an address or a connection before Start")
	}
	if err := h.Readiness(); err == nil || err.Error() != "not started" {
		t.Errorf("Readiness: %v", err)
	}
	for range 2 {
		if err := h.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Start(context.Background()); !errors.Is(err, host.ErrShutdown) {
		t.Fatalf("Start after Shutdown: %v, want ErrShutdown", err)
	}
}

func TestNewValidates(t *testing.T) {
	build := func(host.Env) (host.Component, error) { return nil, nil }
	serve := func(net.Listener) error { return nil }
	for _, tc := range []struct {
		name string
		cfg  host.Config
		want string
	}{
		{"no part", host.Config{}, "no component"},
		{"no name", host.Config{Parts: []host.Part{{Build: build}}}, "without a name"},
		{"two names", host.Config{Parts: []host.Part{{Name: "a", Build: build}, {Name: "a", Build: build}}}, `two parts named "a"`},
		{"no build", host.Config{Parts: []host.Part{{Name: "a"}}}, "builds no component"},
		{"bad name", host.Config{Parts: []host.Part{{Name: "A", Build: build}}}, `"A"`},
		{"creds and nkey", host.Config{Parts: []host.Part{{Name: "a", Build: build, Connect: natsconn.Config{Creds: "c", NKey: "n"}}}}, "exclusive"},
		{"two purposes", host.Config{Parts: []host.Part{{Name: "a", Build: build,
			Listeners: []host.Listener{{Purpose: "p", Serve: serve}, {Purpose: "p", Serve: serve}}}}}, `listener "p"`},
		{"admin collision", host.Config{Parts: []host.Part{{Name: "a", Build: build}},
			AdminHandlers: map[string]http.Handler{"GET /healthz": http.NotFoundHandler()}}, "admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := host.New(tc.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "host: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// Errors present them as the host's user's.
	errConfig := errors.New("invalid")
	_, err := host.New(host.Config{Errors: host.Errors{Prefix: "agent", Config: func(err error) error { return fmt.Errorf("%w: %w", errConfig, err) }}})
	if !errors.Is(err, errConfig) {
		t.Fatalf("New = %v, want errConfig", err)
	}
}

// TestShutdownWhileStartConnects: Shutdown cancels a Start that waits for
// its broker and waits for it: Start returns ErrShutdown, every port it
// opened is closed by the time Shutdown returns, and a second Shutdown and
// a Start after it are refused as they should be. Meanwhile the admin
// endpoint answers /readyz with what Start is doing.
func TestShutdownWhileStartConnects(t *testing.T) {
	errGone := errors.New("gone")
	h, err := host.New(host.Config{
		Parts: []host.Part{nowhere(t, "web",
			host.Listener{Purpose: "HTTP proxy", Addr: "127.0.0.1:0", Serve: func(net.Listener) error { return nil }})},
		Admin:  "127.0.0.1:0",
		Policy: host.Policy{Path: live.Off},
		Logger: quiet,
		Errors: host.Errors{Shutdown: errGone},
	})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- h.Start(context.Background()) }()
	meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := h.Readiness(); err == nil || err.Error() != "starting: connecting to NATS as web" {
			return fmt.Errorf("Readiness: %v", err)
		}
		return nil
	})
	adminAddr, proxyAddr := h.AdminAddr().String(), h.Addr("web", "HTTP proxy").String()
	if code, body := get(t, "http://"+adminAddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connecting to NATS") {
		t.Errorf("/readyz while connecting: %d %q", code, body)
	}
	if code, _ := get(t, "http://"+adminAddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while connecting: %d", code)
	}
	begin := time.Now()
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	// Shutdown waits for Start's work; Start's goroutine sends its result
	// a moment after, so that moment is waited for, bounded.
	select {
	case err := <-started:
		if !errors.Is(err, errGone) {
			t.Errorf("Start: %v, want Errors.Shutdown", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Start had not returned 2s after Shutdown did")
	}
	for _, a := range []string{adminAddr, proxyAddr} {
		if !closed(a) {
			t.Errorf("%s still accepts after Shutdown", a)
		}
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := h.Start(context.Background()); !errors.Is(err, errGone) {
		t.Errorf("Start after Shutdown: %v", err)
	}
	if h.Conn("web") != nil {
		t.Error("a connection from a Start that Shutdown interrupted")
	}
}

// TestStartFailsFirst: Start reports a port in use and a mesh file that
// does not load before it connects (the broker's address has none), and
// closes what it opened; the host then shuts down cleanly.
func TestStartFailsFirst(t *testing.T) {
	busy := meshtest.BusyAddr(t)
	serve := func(net.Listener) error { return nil }
	for _, tc := range []struct {
		name   string
		second string // the second part's listener
		policy string
		want   string
	}{
		{"port in use", busy, live.Off, "host: bind orders listener: listen tcp"},
		{"no mesh file", "127.0.0.1:0", filepath.Join(t.TempDir(), "none.yaml"), "none.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := freeAddr(t)
			h, err := host.New(host.Config{
				Parts: []host.Part{
					nowhere(t, "web", host.Listener{Purpose: "HTTP proxy", Addr: first, Serve: serve}),
					nowhere(t, "api", host.Listener{Purpose: "bind orders", Addr: tc.second, Serve: serve}),
				},
				Policy: host.Policy{Path: tc.policy},
				Logger: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			err = h.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want %q", err, tc.want)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("Start failed after %v: it connected first", d)
			}
			if !closed(first) {
				t.Error("the first listener stayed open")
			}
			if err := h.Readiness(); err == nil || !strings.Contains(err.Error(), "Start failed") {
				t.Errorf("Readiness after a failed Start: %v", err)
			}
			if err := h.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
				t.Errorf("second Start: %v", err)
			}
			if err := h.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// recorder is a component that notes when it shuts down, around the
// agent it wraps.
type recorder struct {
	*agent.Agent
	name string
	log  *events
}

func (r recorder) Shutdown(ctx context.Context) error {
	err := r.Agent.Shutdown(ctx)
	r.log.add("shut down " + r.name)
	return err
}

type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.list, ", ")
}

// telemetry is shut down last: by then every other step is done, which it
// checks.
type telemetry struct {
	log   *events
	check func() error
}

func (tel telemetry) Shutdown(context.Context) error {
	if err := tel.check(); err != nil {
		tel.log.add("telemetry too early: " + err.Error())
		return nil
	}
	tel.log.add("telemetry")
	return nil
}

// TestHostRunsTwoAgents is node mode's shape: one host runs the agents of
// two services, each on its own connection with its own inbox prefix,
// sharing one mesh file, one admin endpoint and one shutdown. "web" calls
// "orders" through its HTTP proxy; a call in flight when Shutdown comes
// is answered, /readyz says "shutting down" meanwhile, and the steps come
// in order: the agents, the connections, the admin endpoint, the
// telemetry last.
func TestHostRunsTwoAgents(t *testing.T) {
	b := meshtest.Broker(t)
	meshFile := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte("version: 1\nservices:\n  orders: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	log := &events{}
	var h *host.Host
	connect := natsconn.Config{URL: b.ClientURL(), Logger: quiet}
	orders := host.Part{Name: "orders", Connect: connect, Build: func(env host.Env) (host.Component, error) {
		a, err := agent.New(env.Conn, agent.Config{Service: "orders", Policies: env.Policies, Logger: quiet})
		if err != nil {
			return nil, err
		}
		err = a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				once.Do(func() { close(inFlight) })
				<-release
			}
			caller, _ := agent.CallerFrom(r.Context())
			io.WriteString(w, "orders to "+caller)
		}))
		return recorder{a, "orders", log}, err
	}}
	var web *agent.Agent
	webPart := host.Part{Name: "web", Connect: connect,
		Listeners: []host.Listener{{Purpose: "HTTP proxy", Addr: "127.0.0.1:0", Serve: func(l net.Listener) error { return web.ServeHTTPProxy(l) }}},
		Build: func(env host.Env) (host.Component, error) {
			a, err := agent.New(env.Conn, agent.Config{Service: "web", Policies: env.Policies, Logger: quiet})
			web = a
			return recorder{a, "web", log}, err
		}}
	var adminAddr string
	h, err := host.New(host.Config{
		Parts:  []host.Part{orders, webPart},
		Admin:  "127.0.0.1:0",
		Policy: host.Policy{Path: meshFile},
		Logger: quiet,
		Telemetry: telemetry{log: log, check: func() error {
			for _, name := range []string{"orders", "web"} {
				if !h.Conn(name).IsClosed() {
					return errors.New(name + "'s connection is open")
				}
			}
			if !closed(adminAddr) {
				return errors.New("the admin endpoint is open")
			}
			return nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	adminAddr = h.AdminAddr().String()
	for _, name := range []string{"orders", "web"} {
		if got := h.Conn(name).Opts.InboxPrefix; got != wire.InboxPrefix(name) {
			t.Errorf("%s's connection has inbox prefix %q", name, got)
		}
	}
	if h.Conn("orders") == h.Conn("web") {
		t.Error("one connection for two services")
	}
	if code, body := get(t, "http://"+adminAddr+"/config"); code != http.StatusOK || !strings.Contains(body, "orders") {
		t.Errorf("/config: %d %q", code, body)
	}
	proxy := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: h.Addr("web", "HTTP proxy").String()})}}
	defer proxy.CloseIdleConnections()
	call := func(path string) (int, string, error) {
		resp, err := proxy.Get("http://orders" + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	if code, body, err := call("/"); err != nil || code != 200 || body != "orders to web" {
		t.Fatalf("web to orders: %d %q %v", code, body, err)
	}

	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		code, body, err := call("/slow")
		answered <- answer{code, body, err}
	}()
	<-inFlight
	done := make(chan error, 1)
	go func() { done <- h.Shutdown(context.Background()) }()
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, body := get(t, "http://"+adminAddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
			return fmt.Errorf("/readyz while draining: %d %q", code, body)
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a call in flight", err)
	default:
	}
	close(release)
	if a := <-answered; a.err != nil || a.code != 200 || a.body != "orders to web" {
		t.Fatalf("the call in flight: %d %q %v", a.code, a.body, a.err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := log.String()
	if got != "shut down orders, shut down web, telemetry" && got != "shut down web, shut down orders, telemetry" {
		t.Errorf("shutdown steps: %s", got)
	}
	if err := h.Shutdown(context.Background()); err != nil || log.String() != got {
		t.Errorf("second Shutdown: %v, steps %s", err, log.String())
	}
}

// fake is a component that is ready once started.
type fake struct{ started, stopped bool }

func (f *fake) Start(context.Context) error { f.started = true; return nil }
func (f *fake) Readiness() error {
	if !f.started {
		return errors.New("not started")
	}
	return nil
}
func (f *fake) Shutdown(context.Context) error { f.stopped = true; return nil }

// TestGivenConnAndErr: a connection given to a part is used and left
// open; a listener that stops serving is reported on Err, with the
// host's prefix, and one that stops while the host shuts down is not.
func TestGivenConnAndErr(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	stop := make(chan struct{})
	f := &fake{}
	h, err := host.New(host.Config{
		Parts: []host.Part{{Name: "web", Conn: nc,
			Listeners: []host.Listener{
				{Purpose: "failing", Addr: "127.0.0.1:0", Serve: func(net.Listener) error { return errors.New("boom") }},
				{Purpose: "closing", Addr: "127.0.0.1:0", Serve: func(l net.Listener) error {
					<-stop
					return errors.New("closed under its server")
				}},
			},
			Build: func(env host.Env) (host.Component, error) {
				if env.Conn != nc || env.Policies != nil {
					return nil, errors.New("not the given connection, or a policy source with policy off")
				}
				return f, nil
			}}},
		Policy: host.Policy{Path: live.Off},
		Logger: quiet,
		Errors: host.Errors{Prefix: "agent"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.Err():
		if err.Error() != "agent: failing: boom" {
			t.Errorf("Err: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing on Err")
	}
	if err := h.Ready(time.Second); err != nil {
		t.Fatal(err)
	}
	if h.Component("web") != f {
		t.Error("Component is not the one built")
	}
	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(context.Background()) }()
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if err := h.Readiness(); err == nil || err.Error() != "shutting down" {
			return fmt.Errorf("Readiness: %v", err)
		}
		return nil
	})
	close(stop)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.Err():
		t.Errorf("Err while shutting down: %v", err)
	default:
	}
	if !f.stopped || nc.IsClosed() {
		t.Errorf("component stopped %v; given connection closed %v", f.stopped, nc.IsClosed())
	}
	if err := h.Ready(time.Second); err == nil || !errors.Is(err, host.ErrShutdown) {
		t.Errorf("Ready after Shutdown: %v", err)
	}
}
