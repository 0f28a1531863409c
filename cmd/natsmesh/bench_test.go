package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchreport"
)

// TestBenchSmoke runs the orchestration end to end, briefly: the direct and
// in-process HTTP scenarios (echo, broker and echo-app processes), 300ms per
// load. It checks that every load measured calls and the JSON is written;
// never the speed.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	cmd, stdout, stderr := natsmesh(t, nil, "bench", "--duration", "300ms", "--rate", "200", "--conns", "2",
		"--scenarios", "direct-http,inproc-http", "--results", out)
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var rep benchreport.Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 4 {
		t.Fatalf("%d rows, want 2 scenarios x 2 loads:\n%s", len(rep.Rows), stdout)
	}
	for _, row := range rep.Rows {
		if row.Calls == 0 || row.Errors != 0 || row.P50 <= 0 {
			t.Errorf("%s %s: %d calls, %d errors, p50 %v", row.Scenario, row.Load, row.Calls, row.Errors, row.P50)
		}
	}
	if rep.Machine.CPUs == 0 || rep.Machine.GoVersion == "" {
		t.Errorf("machine info missing: %+v", rep.Machine)
	}
	for _, want := range []string{"direct-http", "inproc-http", "Targets", "closed 2", "open 200/s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

// TestBenchCompare prints the change between two recorded runs without
// running one (--from), as make bench prints it after its run.
func TestBenchCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rep benchreport.Report) string {
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	base := write("base.json", benchreport.Report{Rows: []benchreport.Row{{Scenario: "sidecar-http", Load: "closed 1", ReqPerSec: 2000}}})
	now := write("now.json", benchreport.Report{Rows: []benchreport.Row{{Scenario: "sidecar-http", Load: "closed 1", ReqPerSec: 2500}}})
	cmd, stdout, stderr := natsmesh(t, nil, "bench", "--from", now, "--compare", base)
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench --from: %v\n%s", err, stderr)
	}
	if want := "2000 -> 2500 (1.25x)"; !strings.Contains(stdout.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, stdout)
	}
	cmd, _, stderr = natsmesh(t, nil, "bench", "--from", now)
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "--from needs --compare") {
		t.Errorf("--from alone: %v, stderr %q; want a usage error", err, stderr)
	}
	cmd, _, stderr = natsmesh(t, nil, "bench", "--from", now, "--compare", filepath.Join(dir, "missing.json"))
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "missing.json") {
		t.Errorf("--compare of a missing file: %v, stderr %q; want an error naming it", err, stderr)
	}
}
