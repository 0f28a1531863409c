package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/statstest"
)

// TestStat runs natsmesh stat against stand-in instances whose counters
// advance by fixed steps (internal/statstest), so its table and JSON are
// the same every run: compared with testdata/stat-*.golden (go test -run
// TestStat -update to accept a change).
func TestStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"table", nil},
		{"json", []string{"--json"}},
		{"watch", []string{"--watch", "--count", "2"}},
		{"watch-json", []string{"--watch", "--json", "--count", "2"}},
		{"empty", []string{"--nats", "EMPTY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := meshtest.Broker(t)
			url := b.ClientURL()
			if tc.name != "empty" {
				statstest.Serve(t, meshtest.Conn(t, b), statstest.Shop()...)
			}
			args := append([]string{"stat", "--nats", url, "--interval", "200ms", "--quiet-period", "100ms"}, tc.args...)
			if tc.name == "empty" {
				args = args[:len(args)-2]
			}
			cmd, stdout, stderr := natsmesh(t, nil, args...)
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			got := append(stdout.Bytes(), stderr.Bytes()...)
			golden := filepath.Join("testdata", "stat-"+tc.name+".golden")
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
