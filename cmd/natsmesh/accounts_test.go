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

// TestAccounts runs natsmesh accounts generate --operator in-process (with
// a fixed spec in place of the mesh file parser), runs the broker on the
// result and revokes a user with natsmesh accounts revoke.
func TestAccounts(t *testing.T) {
	saved := specFromFile
	t.Cleanup(func() { specFromFile = saved })
	specFromFile = func(path string) (accounts.Spec, error) {
		if path != "mesh.yaml" {
			t.Errorf("read %q, want the default mesh.yaml", path)
		}
		return accounts.Spec{Services: []accounts.Service{{Name: "orders"}, {Name: "web"}}}, nil
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

	// Without the parser, generate says so and exits 2.
	specFromFile = saved
	stderr.Reset()
	if code := run(context.Background(), []string{"accounts", "generate", "-o", dir}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "mesh file parser") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(accounts.SeedFile(dir, "orders")); err != nil {
		t.Fatal(err)
	}
}
