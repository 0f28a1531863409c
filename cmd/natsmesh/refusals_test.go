package main

import (
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
)

// TestAdminToolsRefusedAtOnce: issue 16, item 7. Run with a service's key
// instead of the admin's, on a mesh with generated accounts, policy apply
// and stat fail at once, saying the broker refused them and as whom, not
// after their 30 s timeouts; with the admin's key they work.
func TestAdminToolsRefusedAtOnce(t *testing.T) {
	f, err := policies.ParseFile("../../examples/shop/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := accounts.Generate(f.AccountsSpec(), dir); err != nil {
		t.Fatal(err)
	}
	b := meshtest.Broker(t, func(c *broker.Config) { c.ConfigFile = accounts.ConfigFile(dir) })
	nats := "--nats=" + b.ClientURL()
	orders, admin := "--nkey="+accounts.SeedFile(dir, "orders"), "--nkey="+accounts.SeedFile(dir, accounts.DefaultAdmin)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"policy apply", []string{"policy", "apply", "-f", "../../examples/shop/mesh.yaml", nats, orders}},
		{"stat", []string{"stat", nats, orders}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			cmd, stdout, stderr := natsmesh(t, nil, tc.args...)
			code := exitStatus(t, cmd.Run())
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("refused after %v: a timeout, not the broker's refusal", d)
			}
			if code == 0 || !strings.Contains(stderr.String(), "the broker refused it") || !strings.Contains(stderr.String(), `connected as "admin"`) {
				t.Errorf("exit %d, want the refusal and the identity:\n%s%s", code, stdout, stderr)
			}
		})
	}
	for _, args := range [][]string{
		{"policy", "apply", "-f", "../../examples/shop/mesh.yaml", nats, admin},
		{"stat", nats, admin},
	} {
		cmd, stdout, stderr := natsmesh(t, nil, args...)
		if code := exitStatus(t, cmd.Run()); code != 0 {
			t.Errorf("%s as the admin: exit %d\n%s%s", args[0], code, stdout, stderr)
		}
	}
}
