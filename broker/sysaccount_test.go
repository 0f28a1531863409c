package broker

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestSystemAccountByDefault(t *testing.T) {
	store := t.TempDir()
	var buf syncBuffer
	cfg := testConfig()
	cfg.StoreDir = filepath.Join(store, "js") // not there yet
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	b := run(t, cfg)

	seed := b.SystemUserSeed()
	if want := filepath.Join(cfg.StoreDir, "sys.nk"); seed != want {
		t.Fatalf("seed file %q, want %q", seed, want)
	}
	fi, err := os.Stat(seed)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed mode %v, want 0600", fi.Mode().Perm())
	}

	// Anonymous clients still connect and talk to each other.
	anon, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatalf("anonymous: %v", err)
	}
	defer anon.Close()
	echo(t, anon, "hello")
	if _, err := anon.Request("hello", []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// ... but not to the system account.
	if _, err := anon.Request("$SYS.REQ.SERVER.PING", nil, 500*time.Millisecond); err == nil {
		t.Fatal("anonymous client reached the system account")
	}

	// The system user can: this is what `nats server list` asks.
	nk, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := nats.Connect(b.ClientURL(), nk)
	if err != nil {
		t.Fatalf("system user: %v", err)
	}
	defer sys.Close()
	m, err := sys.Request("$SYS.REQ.SERVER.PING", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("server ping as system user: %v", err)
	}
	if !strings.Contains(string(m.Data), `"server"`) {
		t.Fatalf("server ping reply %s", m.Data)
	}

	if !strings.Contains(buf.String(), "without authentication") || !strings.Contains(buf.String(), "any caller") {
		t.Fatalf("no warning about running without authentication in the log:\n%s", buf.String())
	}

	// The key is kept across restarts with the same store.
	shutdown(t, b)
	b2 := run(t, cfg)
	sys2, err := nats.Connect(b2.ClientURL(), nk)
	if err != nil {
		t.Fatalf("system user after restart: %v", err)
	}
	sys2.Close()
}

func TestNoSystemUserWithConfigFile(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("port: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.ConfigFile = conf
	b := run(t, cfg)
	if b.SystemUserSeed() != "" {
		t.Fatalf("system user seed %q made despite a config file", b.SystemUserSeed())
	}
}
