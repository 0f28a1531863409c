package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// TestUI runs natsmesh ui against stand-in instances and reads the page
// and its graph endpoint.
func TestUI(t *testing.T) {
	b := meshtest.Broker(t)
	statstest.Serve(t, meshtest.Conn(t, b), statstest.Shop()...)
	addr := freeAddr(t)
	p := startProcEnv(t, nil, "ui", "--admin", addr, "--nats", b.ClientURL())
	var body []byte
	meshtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + addr + "/ui/api/graph")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err
	})
	var g struct {
		Services []struct{ Name string }   `json:"services"`
		Edges    []struct{ Caller string } `json:"edges"`
	}
	if err := json.Unmarshal(body, &g); err != nil || len(g.Services) != 5 || len(g.Edges) != 5 {
		t.Fatalf("graph %s: %v", body, err)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/ui/" || resp.StatusCode != 200 {
		t.Fatalf("/ led to %s: %d", resp.Request.URL, resp.StatusCode)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0\n%s", code, p.stderr)
	}
}
