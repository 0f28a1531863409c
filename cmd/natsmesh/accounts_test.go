package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestAccounts runs natsmesh accounts generate --operator in-process on a
// mesh file, runs the broker on the result and revokes a user with
// natsmesh accounts revoke.
func TestAccounts(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.WriteFile("mesh.yaml", []byte("version: 1\nservices:\n  orders: {}\n  web: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"accounts", "generate", "-o", dir, "--operator"}, &stdout, &stderr); code != 0 {
		t.Fatalf("generate: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), accounts.ConfigFile(dir)) {
		t.Fatalf("generate output %q does not name the config file", stdout.String())
	}
	b := meshtest.Broker(t, func(c *broker.Config) { c.ConfigFile = accounts.ConfigFile(dir) })
	nc, err := nats.Connect(b.ClientURL(), nats.UserCredentials(accounts.CredsFile(dir, "orders")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	stdout.Reset()
	if code := run(context.Background(), []string{"accounts", "revoke", "orders", "-d", dir, "--nats", b.ClientURL()}, &stdout, &stderr); code != 0 {
		t.Fatalf("revoke: exit %d\n%s", code, stderr.String())
	}
	if _, err := nats.Connect(b.ClientURL(), nats.UserCredentials(accounts.CredsFile(dir, "orders")), nats.NoReconnect()); err == nil {
		t.Fatal("revoked user connects")
	}

	// A bad mesh file is a usage error naming the line.
	if err := os.WriteFile("bad.yaml", []byte("version: 1\nservices:\n  Orders: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"accounts", "generate", "-f", "bad.yaml", "-o", dir}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "bad.yaml:3") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(accounts.SeedFile(dir, "orders")); err != nil {
		t.Fatal(err)
	}
}
