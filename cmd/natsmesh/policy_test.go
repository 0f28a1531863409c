package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
)

// TestPolicyCommands applies the shop's mesh file to a fresh broker and
// compares what apply, get and diff print with testdata/policy-*.golden
// (go test -run TestPolicyCommands -update to accept a change).
func TestPolicyCommands(t *testing.T) {
	b := meshtest.Broker(t)
	nats := "--nats=" + b.ClientURL()
	// The shop's file with a 50/50 split and the gateway as "bridge".
	changed := "testdata/policy-mesh-changed.yaml"
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"get-empty", []string{"policy", "get", nats}, 1},
		{"apply", []string{"policy", "apply", "-f", "../../examples/shop/mesh.yaml", nats}, 0},
		{"apply-again", []string{"policy", "apply", "-f", "../../examples/shop/mesh.yaml", nats}, 0},
		{"get", []string{"policy", "get", nats}, 0},
		{"get-service-json", []string{"policy", "get", "--json", nats, "inventory"}, 0},
		{"get-unknown-service", []string{"policy", "get", "nobody", nats}, 1},
		{"diff", []string{"policy", "diff", "-f", changed, nats}, 0},
		{"apply-invalid", []string{"policy", "apply", "-f", "../../policies/testdata/bad/weights.yaml", nats}, 2},
		{"help", []string{"policy", "--help"}, 0},
		{"no-subcommand", []string{"policy"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stdout, stderr := natsmesh(t, nil, tc.args...)
			if code := exitStatus(t, cmd.Run()); code != tc.code {
				t.Fatalf("exit status %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			got := append(stdout.Bytes(), stderr.Bytes()...)
			golden := filepath.Join("testdata", "policy-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, got)
			}
		})
	}
}

// TestPolicyDiffCreatesNothing: diff reads the live file by direct get, as
// get does: on a broker whose bucket was never made it shows every line
// as added, and makes no bucket.
func TestPolicyDiffCreatesNothing(t *testing.T) {
	b := meshtest.Broker(t)
	cmd, stdout, stderr := natsmesh(t, nil, "policy", "diff", "-f", "../../examples/shop/mesh.yaml", "--nats="+b.ClientURL())
	if code := exitStatus(t, cmd.Run()); code != 0 {
		t.Fatalf("exit status %d\n%s%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout.String(), "--- live (revision 0)\n") || !strings.Contains(stdout.String(), "\n+ services.") {
		t.Errorf("diff against no live file:\n%s", stdout)
	}
	if stderr.Len() > 0 {
		t.Errorf("diff wrote to stderr:\n%s", stderr)
	}
	js, err := jetstream.New(meshtest.Conn(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(t.Context(), live.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("after diff, the bucket %s: %v; want none", live.Bucket, err)
	}
}
