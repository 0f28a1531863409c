package benchrun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcAccountingOfSelf(t *testing.T) {
	before, err := cpuTime("self")
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the clock-tick counter moves (a 10 ms tick), for at
	// most 5s: an accounting that never moves fails.
	var after time.Duration
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for x := 0; x < 1e6; x++ {
			_ = x * x
		}
		if after, err = cpuTime("self"); err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
	}
	if after <= before {
		t.Errorf("CPU time did not grow while burning CPU: %v then %v", before, after)
	}
	rss, err := peakRSS("self")
	if err != nil || rss <= 0 {
		t.Errorf("peak RSS %d, %v", rss, err)
	}
	if _, err := cpuTime("0"); err == nil {
		t.Error("no error for a missing process")
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no binary", Options{}},
		{"bad scenario", Options{Exe: "x", Scenarios: []string{"carrier-pigeon"}}},
		{"bad conns", Options{Exe: "x", Conns: []int{0}}},
		{"bad size", Options{Exe: "x", Size: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.defaults(); !errors.Is(err, ErrConfig) {
				t.Errorf("got %v, want ErrConfig", err)
			}
		})
	}
	o := Options{Exe: "x"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if len(o.loads()) != 3 || o.loads()[0].rate != 1000 {
		t.Errorf("default loads %+v: want open 1000/s, closed 1, closed 32", o.loads())
	}
}

// evaluate turns side-by-side rows into targets: ratios, added latency and
// per-agent costs, SKIP where a scenario did not run.
func TestTargets(t *testing.T) {
	o := Options{Exe: "x"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	r := newReport(&o)
	r.Rows = []Row{
		{Scenario: DirectHTTP, Load: "closed 1", P50: 200 * time.Microsecond, ReqPerSec: 4000},
		{Scenario: DirectHTTP, Load: "closed 32", ReqPerSec: 10000},
		{Scenario: SidecarHTTP, Load: "closed 1", P50: 280 * time.Microsecond},
		{Scenario: SidecarHTTP, Load: "closed 32", ReqPerSec: 6000},
		{Scenario: SidecarHTTP, Load: "open 1000/s", Components: []Component{
			{Name: "agent-client", CPUPer1k: 0.05, PeakRSSMB: 20},
			{Name: "agent-echo", CPUPer1k: 0.2, PeakRSSMB: 30},
		}},
		{Scenario: InprocHTTP, Load: "closed 32", ReqPerSec: 12000},
	}
	r.Skipped = []Skip{{Scenario: NginxPair, Reason: "nginx not found"}}
	r.evaluate()
	want := map[string]string{
		"sidecar-http throughput vs direct-http": "PASS",
		"sidecar-http throughput vs nginx-pair":  "SKIP",
		"sidecar-http added p50 latency":         "PASS",
		"inproc-http throughput vs direct-http":  "FAIL",
		"sidecar-http agent-client CPU":          "PASS",
		"sidecar-http agent-echo CPU":            "FAIL",
		"sidecar-http agent-client peak RSS":     "PASS",
		"sidecar-http agent-echo peak RSS":       "FAIL",
		"sidecar-grpc added p50 latency":         "SKIP",
	}
	got := map[string]Target{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg
	}
	for name, status := range want {
		if got[name].Status != status {
			t.Errorf("%s: %s (%s), want %s", name, got[name].Status, got[name].Measured, status)
		}
	}
	if m := got["sidecar-http throughput vs nginx-pair"].Measured; !strings.Contains(m, "nginx not found") {
		t.Errorf("skip reason missing: %q", m)
	}
	if a := r.Rows[2].AddedP50; a != 80*time.Microsecond {
		t.Errorf("added p50 %v, want 80µs", a)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"sidecar-http", "agent-echo 0.200 30.0MiB", "FAIL", "skipped nginx-pair"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
}

// With no open loop (natsmesh bench --rate 0 passes a negative rate) the
// per-agent targets are SKIP and named "open loop", never "open -1/s".
func TestTargetsWithoutOpenLoop(t *testing.T) {
	o := Options{Exe: "x", Rate: -1}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	r := newReport(&o)
	r.Rows = []Row{{Scenario: SidecarHTTP, Load: "closed 1", P50: time.Millisecond}}
	r.evaluate()
	if r.Settings.Rate != 0 {
		t.Errorf("settings record rate %v, want 0 (no open loop)", r.Settings.Rate)
	}
	n := 0
	for _, tg := range r.Targets {
		if strings.Contains(tg.Want+tg.Measured, "-1") {
			t.Errorf("target %q: want %q, measured %q", tg.Name, tg.Want, tg.Measured)
		}
		if strings.HasSuffix(tg.Name, " CPU") || strings.HasSuffix(tg.Name, " peak RSS") {
			n++
			if tg.Status != "SKIP" || !strings.Contains(tg.Want, "(open loop)") {
				t.Errorf("target %q: %s, want %q: want SKIP at the open loop", tg.Name, tg.Status, tg.Want)
			}
		}
	}
	if n != 8 {
		t.Errorf("%d per-agent targets, want 8", n)
	}
}

func TestFmtDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		150 * time.Microsecond:   "150µs",
		-80 * time.Microsecond:   "-80µs",
		12500 * time.Microsecond: "12.5ms",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
}

// The generated nginx configuration passes nginx -t, where nginx exists.
func TestNginxConfig(t *testing.T) {
	bin := FindNginx()
	if bin == "" {
		t.Skip("nginx not installed (make bench-deps)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, "127.0.0.1:1", "127.0.0.1:2"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
