package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
)

// userHome points HOME and XDG_DATA_HOME at temporary directories, so
// that a persistent store never lands in the real home.
func userHome(t *testing.T) (home, data string) {
	t.Helper()
	home, data = t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", data)
	return home, data
}

func TestDataDir(t *testing.T) {
	home, data := userHome(t)
	for _, tc := range []struct {
		name string
		port int
		want string
	}{
		{"n1", 4222, filepath.Join(data, "natsmesh", "broker", "n1")},
		{"", 4222, filepath.Join(data, "natsmesh", "broker", "port-4222")},
		{"", 4223, filepath.Join(data, "natsmesh", "broker", "port-4223")},
		{"a/../b c", 1, filepath.Join(data, "natsmesh", "broker", "a_.._b_c")},
		{"..", 1, filepath.Join(data, "natsmesh", "broker", "_")},
	} {
		if got, err := DataDir(tc.name, tc.port); err != nil || got != tc.want {
			t.Errorf("DataDir(%q, %d) = %q, %v; want %q", tc.name, tc.port, got, err, tc.want)
		}
	}
	if got, err := DataDir("", -1); !errors.Is(err, errNoIdentity) {
		t.Errorf("DataDir of a random port: %q, %v; want none", got, err)
	}
	t.Setenv("XDG_DATA_HOME", "")
	if got, err := DataDir("n1", 0); err != nil || got != filepath.Join(home, ".local", "share", "natsmesh", "broker", "n1") {
		t.Errorf("without XDG_DATA_HOME: %q, %v", got, err)
	}
}

// freePort returns a loopback port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPersistentStore: with PersistentStore and no store directory, each
// broker keeps JetStream in its own per-user directory (by server name,
// else by client port), and the mesh file applied there is still there
// after a restart.
func TestPersistentStore(t *testing.T) {
	_, data := userHome(t)
	persistent := func(name string, port int) Config {
		cfg := testConfig()
		cfg.NoJetStream = false
		cfg.PersistentStore = true
		cfg.ServerName = name
		if port != 0 {
			cfg.Listen = "127.0.0.1:" + strconv.Itoa(port)
		}
		cfg.LameDuckDuration = -1
		return cfg
	}
	storeOf := func(b *Broker) string { return filepath.Dir(b.Server().StoreDir()) }
	a := run(t, persistent("a", 0))
	bb := run(t, persistent("b", 0))
	port := freePort(t)
	p := run(t, persistent("", port))
	for _, tc := range []struct {
		b    *Broker
		want string
	}{
		{a, filepath.Join(data, "natsmesh", "broker", "a")},
		{bb, filepath.Join(data, "natsmesh", "broker", "b")},
		{p, filepath.Join(data, "natsmesh", "broker", "port-"+strconv.Itoa(port))},
	} {
		if got := storeOf(tc.b); got != tc.want {
			t.Errorf("%s: store %q, want %q", tc.b.Server().Name(), got, tc.want)
		}
		if fi, err := os.Stat(tc.want); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, mode %v; want 0700", tc.want, err, fi.Mode().Perm())
		}
	}
	shutdown(t, bb)
	shutdown(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders:\n    policy: { timeout: 7s }\n"))
	if err != nil {
		t.Fatal(err)
	}
	open := func(b *Broker) *live.Store {
		t.Helper()
		js, err := jetstream.New(connect(t, b.ClientURL()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := live.OpenStore(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rev, err := open(a).Apply(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	seed := a.SystemUserSeed()
	shutdown(t, a)

	// The same broker again: same directory, same file, same system key.
	again := run(t, persistent("a", 0))
	if got := storeOf(again); got != filepath.Join(data, "natsmesh", "broker", "a") {
		t.Fatalf("restarted: store %q", got)
	}
	if again.SystemUserSeed() != seed {
		t.Errorf("system user seed %q, want the same %q", again.SystemUserSeed(), seed)
	}
	got, grev, err := open(again).Get(ctx)
	if err != nil || grev != rev || got.Policy("orders", "").Timeout.D() != 7*time.Second {
		t.Fatalf("after a restart: revision %d, %v; want %d with the applied file", grev, err, rev)
	}
	shutdown(t, again)
	if _, err := os.Stat(filepath.Join(data, "natsmesh", "broker", "a", "jetstream")); err != nil {
		t.Errorf("the store was removed at shutdown: %v", err)
	}
}

// TestPersistentStoreRandomPort: a broker with a random port and no name
// keeps a temporary store (there is no directory it could find again),
// and says so.
func TestPersistentStoreRandomPort(t *testing.T) {
	_, data := userHome(t)
	var logs syncBuffer
	cfg := testConfig()
	cfg.NoJetStream = false
	cfg.PersistentStore = true
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b := run(t, cfg)
	dir := b.Server().StoreDir()
	if rel, err := filepath.Rel(data, dir); err == nil && filepath.IsLocal(rel) {
		t.Errorf("store %q in the data home", dir)
	}
	if l := logs.String(); !strings.Contains(l, "random client port") || !strings.Contains(l, "temporary directory") {
		t.Errorf("no warning: %s", logs.String())
	}
	shutdown(t, b)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary store %s not removed: %v", dir, err)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Errorf("the data home is not empty: %v", entries)
	}
}
