package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/testcert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig is a config for tests: random client port, no monitoring,
// JetStream off unless the test turns it on.
func testConfig() Config {
	return Config{Listen: "127.0.0.1:-1", HTTP: HTTPOff, NoJetStream: true}
}

// run starts a broker from cfg and shuts it down in t.Cleanup.
func run(t *testing.T, cfg Config) *Broker {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, b) })
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return b
}

func shutdown(t *testing.T, b *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

func checkFor(t *testing.T, wait, sleep time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", wait, err)
		}
		time.Sleep(sleep)
	}
}

// echo subscribes a responder on nc that answers "re: <data>".
func echo(t *testing.T, nc *nats.Conn, subj string) {
	t.Helper()
	_, err := nc.Subscribe(subj, func(m *nats.Msg) { m.Respond(append([]byte("re: "), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func request(nc *nats.Conn, subj string) error {
	m, err := nc.Request(subj, []byte("hi"), time.Second)
	if err != nil {
		return err
	}
	if got := string(m.Data); got != "re: hi" {
		return fmt.Errorf("reply %q, want %q", got, "re: hi")
	}
	return nil
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestRequestReply(t *testing.T) {
	cfg := testConfig()
	cfg.NoJetStream = false
	cfg.StoreDir = t.TempDir()
	b := run(t, cfg)

	if !strings.HasPrefix(b.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(b.ClientURL(), ":-1") {
		t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<port>", b.ClientURL())
	}
	inproc, err := b.InProcessConn()
	if err != nil {
		t.Fatal(err)
	}
	defer inproc.Close()
	tcp := connect(t, b.ClientURL())

	echo(t, inproc, "svc.inproc")
	echo(t, tcp, "svc.tcp")
	for _, tc := range []struct {
		name string
		nc   *nats.Conn
		subj string
	}{
		{"tcp to in-process", tcp, "svc.inproc"},
		{"in-process to tcp", inproc, "svc.tcp"},
		{"in-process to itself", inproc, "svc.inproc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := request(tc.nc, tc.subj); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("jetstream", func(t *testing.T) {
		if !b.Server().JetStreamEnabled() {
			t.Fatal("JetStream not enabled")
		}
		if got, want := b.Server().StoreDir(), filepath.Join(cfg.StoreDir, "jetstream"); got != want {
			t.Fatalf("store dir %q, want %q", got, want)
		}
		js, err := tcp.JetStream()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish("t.1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(cfg.StoreDir, "jetstream", "$G", "streams", "T")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCluster(t *testing.T) {
	cfg := func(name string, routes ...string) Config {
		c := testConfig()
		c.ServerName = name
		c.Cluster = Cluster{Name: "test", Listen: "127.0.0.1:-1", Routes: routes}
		return c
	}
	a := run(t, cfg("A"))
	route := a.ClusterURL()
	if route == "" {
		t.Fatal("A has no cluster URL")
	}
	bb := run(t, cfg("B", route))
	c := run(t, cfg("C", route))

	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, b := range []*Broker{a, bb, c} {
			if n := b.Server().NumRoutes(); n < 2 {
				return fmt.Errorf("%s has %d routes, want 2", b.Server().Name(), n)
			}
		}
		return nil
	})

	echo(t, connect(t, c.ClientURL()), "svc.on-c")
	client := connect(t, a.ClientURL())
	// Interest travels from C to A asynchronously; until it arrives the
	// request gets no responders.
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error { return request(client, "svc.on-c") })
}

func TestLeafNode(t *testing.T) {
	hubCfg := testConfig()
	hubCfg.LeafNodes.Listen = "127.0.0.1:-1"
	hub := run(t, hubCfg)
	if hub.LeafNodeURL() == "" {
		t.Fatal("hub has no leaf node URL")
	}

	leafCfg := testConfig()
	leafCfg.LeafNodes.Remotes = []string{hub.LeafNodeURL()}
	leafServesHub(t, hub, run(t, leafCfg))
}

// leafServesHub waits for leaf's one leaf connection to hub, then checks
// that a client of leaf reaches a service on hub.
func leafServesHub(t *testing.T, hub, leaf *Broker) {
	t.Helper()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := leaf.Server().NumLeafNodes(); n != 1 {
			return fmt.Errorf("leaf has %d leaf connections, want 1", n)
		}
		return nil
	})
	echo(t, connect(t, hub.ClientURL()), "svc.on-hub")
	client := connect(t, leaf.ClientURL())
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error { return request(client, "svc.on-hub") })
}

func TestNewConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	badConf := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(badConf, []byte("port: {{{"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cfg  Config
		want string // in the error message
	}{
		{"missing config file", Config{ConfigFile: filepath.Join(dir, "nope.conf")}, "nope.conf"},
		{"config file syntax", Config{ConfigFile: badConf}, "bad.conf"},
		{"missing tls cert", Config{TLS: TLS{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: garbage}}, "tls"},
		{"garbage tls cert", Config{TLS: TLS{CertFile: garbage, KeyFile: garbage}}, "tls"},
		{"tls key without cert", Config{TLS: TLS{KeyFile: garbage}}, "tls"},
		{"listen without port", Config{Listen: "localhost"}, "listen"},
		{"listen port out of range", Config{Listen: "127.0.0.1:70000"}, "listen"},
		{"http bad", Config{HTTP: "nope"}, "http"},
		{"route not a url", Config{Cluster: Cluster{Listen: ":-1", Routes: []string{"127.0.0.1:6222"}}}, "cluster routes"},
		{"routes without listen", Config{Cluster: Cluster{Routes: []string{"nats://127.0.0.1:6222"}}}, "cluster"},
		{"leaf remote bad scheme", Config{LeafNodes: LeafNodes{Remotes: []string{"http://127.0.0.1:7422"}}}, "leafnode remotes"},
		{"negative max payload", Config{MaxPayload: -1}, "max payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.cfg)
			if err == nil {
				shutdown(t, b)
				t.Fatal("New succeeded, want an error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %q does not wrap ErrConfig", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "broker: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want prefix %q and mention of %q", msg, "broker: ", tc.want)
			}
		})
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()

	for _, tc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"client", func(c *Config) { c.Listen = busy }},
		{"http", func(c *Config) { c.HTTP = busy }},
		{"cluster", func(c *Config) { c.Cluster.Listen = busy }},
		{"leafnodes", func(c *Config) { c.LeafNodes.Listen = busy }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.cfg(&cfg)
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(t, b)
			err = b.Start()
			if err == nil {
				err = b.Ready(5 * time.Second)
			}
			want := "broker: listen " + busy + ": address already in use"
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q", err, want)
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("error %v does not wrap EADDRINUSE", err)
			}
		})
	}
}

// TestFatalListenError covers the path the probe in Start cannot: the
// server itself failing to bind, reported through the logger's Fatalf.
func TestFatalListenError(t *testing.T) {
	var got error
	l := &logAdapter{log: slog.New(slog.DiscardHandler), fatal: func(err error) { got = err }}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	_, lerr := net.Listen("tcp", addr)
	if lerr == nil {
		t.Fatal("listening twice on one port succeeded")
	}
	// As in server.AcceptLoop.
	l.Fatalf("Error listening on port: %s, %q", addr, lerr)
	if want := "broker: listen " + addr + ": address already in use"; got == nil || got.Error() != want {
		t.Fatalf("fatal error %v, want %q", got, want)
	}
	l.Fatalf("Can't start monitoring: %v", errors.New("boom"))
	if got.Error() != "broker: can't start monitoring: boom" {
		t.Fatalf("fatal error %q", got)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("before start", func(t *testing.T) {
		b, err := New(Config{Listen: ":-1", HTTP: HTTPOff})
		if err != nil {
			t.Fatal(err)
		}
		dir := b.Server().StoreDir()
		shutdown(t, b)
		shutdown(t, b)
		if err := b.Start(); err == nil {
			t.Fatal("Start after Shutdown succeeded")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary store %s not removed: %v", dir, err)
		}
	})

	t.Run("twice and concurrently", func(t *testing.T) {
		b := run(t, Config{Listen: ":-1", HTTP: "127.0.0.1:-1"})
		dir := b.Server().StoreDir()
		if !b.Server().JetStreamEnabled() || dir == "" {
			t.Fatal("JetStream is not on by default")
		}
		start := time.Now()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { shutdown(t, b) })
		}
		wg.Wait()
		// No clients: lame-duck mode has nothing to wait for.
		if d := time.Since(start); d > DefaultLameDuckDuration {
			t.Errorf("Shutdown with no clients took %s", d)
		}
		shutdown(t, b)
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary store %s not removed: %v", dir, err)
		}
	})

	t.Run("lame duck closes clients", func(t *testing.T) {
		cfg := testConfig()
		cfg.LameDuckDuration = 400 * time.Millisecond
		b := run(t, cfg)
		ldm := make(chan struct{})
		nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect(),
			nats.LameDuckModeHandler(func(*nats.Conn) { close(ldm) }))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		shutdown(t, b)
		// nats.go runs the lame-duck callback asynchronously.
		select {
		case <-ldm:
		case <-time.After(5 * time.Second):
			t.Error("client was not told about lame-duck mode")
		}
		checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if !nc.IsClosed() {
				return errors.New("client still connected")
			}
			return nil
		})
	})

	t.Run("context ends lame duck early", func(t *testing.T) {
		cfg := testConfig()
		cfg.LameDuckDuration = time.Minute
		b := run(t, cfg)
		nc, err := b.InProcessConn(nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want deadline exceeded", err)
		}
		if b.Server().Running() {
			t.Fatal("server still running")
		}
	})
}

func TestLogger(t *testing.T) {
	var buf syncBuffer
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	run(t, cfg)
	if !strings.Contains(buf.String(), "Server is ready") {
		t.Fatalf("log does not say the server is ready:\n%s", buf.String())
	}
}

func TestTLS(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	cfg := testConfig()
	cfg.TLS = TLS{CertFile: cert, KeyFile: key}
	b := run(t, cfg)
	// The client verifies the server against the certificate as its CA.
	nc, err := nats.Connect(b.ClientURL(), nats.RootCAs(cert))
	if err != nil {
		t.Fatal(err)
	}
	if !nc.TLSRequired() {
		t.Error("connection is not TLS")
	}
	nc.Close()
	// Without the CA the server is not trusted.
	if nc, err := nats.Connect(b.ClientURL(), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil {
		nc.Close()
		t.Fatal("connected to a self-signed server without its CA")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestConfigFile(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("port: 14999\nmax_payload: 2048\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		cfg        Config
		host       string
		port       int
		maxPayload int32
	}{
		{"file only", Config{ConfigFile: conf}, "127.0.0.1", 14999, 2048},
		{"flags on top", Config{ConfigFile: conf, Listen: "0.0.0.0:-1", MaxPayload: 4096}, "0.0.0.0", -1, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := tc.cfg.options()
			if err != nil {
				t.Fatal(err)
			}
			if opts.Host != tc.host || opts.Port != tc.port || opts.MaxPayload != tc.maxPayload || !opts.NoSigs {
				t.Fatalf("host %q port %d max payload %d nosigs %v, want %q %d %d true",
					opts.Host, opts.Port, opts.MaxPayload, opts.NoSigs, tc.host, tc.port, tc.maxPayload)
			}
		})
	}
}

// TestConfigFileDecides: settings a config file makes are kept unless a
// field overrides them.
func TestConfigFileDecides(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("jetstream: false\nlame_duck_duration: \"45s\"\nlame_duck_grace_period: \"1s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := Config{ConfigFile: conf}.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.JetStream || opts.LameDuckDuration != 45*time.Second {
		t.Errorf("file said jetstream off and lame duck 45s; got jetstream %v, lame duck %v", opts.JetStream, opts.LameDuckDuration)
	}
	opts, err = Config{ConfigFile: conf, LameDuckDuration: time.Second}.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.LameDuckDuration != time.Second {
		t.Errorf("an explicit lame duck duration lost to the file: %v", opts.LameDuckDuration)
	}
	if opts, err = (Config{}).options(); err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || opts.LameDuckDuration != DefaultLameDuckDuration {
		t.Errorf("defaults without a file: jetstream %v, lame duck %v", opts.JetStream, opts.LameDuckDuration)
	}
}

// TestNoLameDuck: a negative duration closes clients at once, even though
// nats-server fills in its own two-minute default.
func TestNoLameDuck(t *testing.T) {
	cfg := testConfig()
	cfg.LameDuckDuration = -1
	b := run(t, cfg)
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a client and no lame duck: %v", err)
	}
}

// TestLeafRemotesAreOneHub: several remote URLs are one hub's servers, so a
// leaf holds one connection and a message reaches a hub subscriber once.
func TestLeafRemotesAreOneHub(t *testing.T) {
	opts, err := Config{LeafNodes: LeafNodes{Remotes: []string{"nats://127.0.0.1:7422", "nats://127.0.0.1:7423"}}}.options()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.LeafNode.Remotes) != 1 || len(opts.LeafNode.Remotes[0].URLs) != 2 {
		t.Fatalf("remotes %+v, want one remote with two URLs", opts.LeafNode.Remotes)
	}
}

// TestSyncAlways: JetStream fsyncs every write unless told otherwise, since
// a stream cannot ask for that itself (the policies bucket needs it).
func TestSyncAlways(t *testing.T) {
	dir := t.TempDir()
	periodic := filepath.Join(dir, "periodic.conf")
	if err := os.WriteFile(periodic, []byte("jetstream { sync_interval: \"10s\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	silent := filepath.Join(dir, "silent.conf")
	if err := os.WriteFile(silent, []byte("jetstream: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cfg    Config
		always bool
	}{
		{"default", Config{}, true},
		{"interval", Config{SyncInterval: time.Second}, false},
		{"file sets an interval", Config{ConfigFile: periodic}, false},
		{"file says nothing", Config{ConfigFile: silent}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := tc.cfg.options()
			if err != nil {
				t.Fatal(err)
			}
			if opts.SyncAlways != tc.always {
				t.Errorf("SyncAlways %v, want %v", opts.SyncAlways, tc.always)
			}
		})
	}
	if _, err := (Config{SyncInterval: -time.Second}).options(); !errors.Is(err, ErrConfig) {
		t.Errorf("negative interval: %v, want ErrConfig", err)
	}
}

// TestClusterTLS: with --tls-* set, routes are TLS both ways and verify
// their peer: a server whose certificate the others do not trust never
// joins.
func TestClusterTLS(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	cfg := func(name string, tls TLS, routes ...string) Config {
		c := testConfig()
		c.ServerName = name
		c.TLS = tls
		c.Cluster = Cluster{Name: "test", Listen: "127.0.0.1:-1", Routes: routes}
		return c
	}
	trusted := TLS{CertFile: cert, KeyFile: key, CAFile: cert}
	a := run(t, cfg("A", trusted))
	if a.Server().ClusterAddr() == nil {
		t.Fatal("A has no cluster listener")
	}
	opts := a.opts
	if opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("routes are not mutual TLS")
	}
	bb := run(t, cfg("B", trusted, a.ClusterURL()))
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := bb.Server().NumRoutes(); n < 1 {
			return fmt.Errorf("B has %d routes", n)
		}
		return nil
	})
	echo(t, connect(t, bb.ClientURL(), nats.RootCAs(cert), nats.ClientCert(cert, key)), "svc.on-b")
	client := connect(t, a.ClientURL(), nats.RootCAs(cert), nats.ClientCert(cert, key))
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error { return request(client, "svc.on-b") })

	// A stranger: its own self-signed certificate, trusted by no one.
	ocert, okey := testcert.SelfSigned(t)
	var logs syncBuffer
	sc := cfg("S", TLS{CertFile: ocert, KeyFile: okey, CAFile: ocert}, a.ClusterURL())
	sc.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := run(t, sc)
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "certificate") {
			return errors.New("no TLS handshake failure logged yet")
		}
		return nil
	})
	if n := s.Server().NumRoutes(); n != 0 {
		t.Fatalf("the stranger has %d routes", n)
	}
}

// TestLeafNodeTLS: the hub's leaf listener requires a certificate signed
// by its CA; a leaf that presents one connects over TLS.
func TestLeafNodeTLS(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	hubCfg := testConfig()
	hubCfg.LeafNodes = LeafNodes{Listen: "127.0.0.1:-1", TLS: TLS{CertFile: cert, KeyFile: key, CAFile: cert}}
	hub := run(t, hubCfg)
	if tc := hub.opts.LeafNode.TLSConfig; tc == nil || tc.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("the leaf listener does not verify leaf certificates")
	}
	leafCfg := testConfig()
	leafCfg.LeafNodes = LeafNodes{Remotes: []string{hub.LeafNodeURL()}, TLS: TLS{CertFile: cert, KeyFile: key, CAFile: cert}}
	leafServesHub(t, hub, run(t, leafCfg))
}

// TestFileTLSSecuresPeers: a config file's client TLS block (as natsmesh
// accounts generate --tls-cert writes it) also secures the routes and leaf
// nodes that flags add.
func TestFileTLSSecuresPeers(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", cert, key, cert)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := Config{ConfigFile: conf, Cluster: Cluster{Listen: "127.0.0.1:-1"}, LeafNodes: LeafNodes{Listen: "127.0.0.1:-1", Remotes: []string{"nats://127.0.0.1:7422"}}}.options()
	if err != nil {
		t.Fatal(err)
	}
	if tc := opts.Cluster.TLSConfig; tc == nil || tc.ClientAuth != tls.RequireAndVerifyClientCert || tc.RootCAs == nil {
		t.Error("routes not mutual TLS")
	}
	if tc := opts.LeafNode.TLSConfig; tc == nil || tc.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Error("leaf listener does not verify leaf certificates")
	}
	if r := opts.LeafNode.Remotes[0]; !r.TLS || r.TLSConfig == nil || r.TLSConfig.RootCAs == nil {
		t.Error("leaf remote does not verify the hub")
	}
}
