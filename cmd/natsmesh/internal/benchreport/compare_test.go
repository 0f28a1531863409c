package benchreport

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func row(scenario, load string, rps float64, p50, p99 time.Duration, comps ...Component) Row {
	return Row{Scenario: scenario, Load: load, ReqPerSec: rps, P50: p50, P99: p99,
		Client: Component{Name: "client", CPUPer1k: 0.1, AllocsPerReq: 50}, Components: comps}
}

func TestFiguresOf(t *testing.T) {
	r := row("sidecar-http", "closed 1", 2000, 400*time.Microsecond, 2*time.Millisecond,
		Component{Name: "broker", CPUPer1k: 0.2, PeakRSSMB: 31},
		Component{Name: "agent-echo", CPUPer1k: 0.15, PeakRSSMB: 33.5, AllocsPerReq: 137},
		Component{Name: "agent-client", CPUPer1k: 0.15, PeakRSSMB: 32, AllocsPerReq: 122})
	got := FiguresOf(&r)
	want := Figures{ReqPerSec: 2000, P50: 400 * time.Microsecond, P99: 2 * time.Millisecond,
		CPUPer1k: 0.6, Allocs: 50 + 137 + 122, PeakRSSMB: 33.5}
	if d := got.CPUPer1k - want.CPUPer1k; d > 1e-9 || d < -1e-9 {
		t.Errorf("CPU %v, want %v", got.CPUPer1k, want.CPUPer1k)
	}
	got.CPUPer1k = want.CPUPer1k
	if got != want {
		t.Errorf("FiguresOf = %+v, want %+v", got, want)
	}
}

func TestCompare(t *testing.T) {
	ms := time.Millisecond
	a := row("direct-http", "closed 1", 8000, ms/10, ms)
	b := row("sidecar-http", "closed 1", 2000, ms/2, 2*ms)
	b2 := row("sidecar-http", "closed 1", 3000, ms/4, 3*ms)
	c := row("sidecar-http", "closed 32", 5000, 5*ms, 20*ms)
	d := row("scale-route", "closed 1", 1500, ms, 4*ms)
	for _, tc := range []struct {
		name      string
		base, now []Row
		want      []Change
	}{
		{name: "same rows", base: []Row{a, b}, now: []Row{a, b2}, want: []Change{
			{Scenario: "direct-http", Load: "closed 1", Base: FiguresOf(&a), Now: FiguresOf(&a)},
			{Scenario: "sidecar-http", Load: "closed 1", Base: FiguresOf(&b), Now: FiguresOf(&b2)},
		}},
		{name: "matched by scenario and load, in now's order", base: []Row{c, b}, now: []Row{b2, c}, want: []Change{
			{Scenario: "sidecar-http", Load: "closed 1", Base: FiguresOf(&b), Now: FiguresOf(&b2)},
			{Scenario: "sidecar-http", Load: "closed 32", Base: FiguresOf(&c), Now: FiguresOf(&c)},
		}},
		{name: "new and gone", base: []Row{a, c}, now: []Row{a, d}, want: []Change{
			{Scenario: "direct-http", Load: "closed 1", Base: FiguresOf(&a), Now: FiguresOf(&a)},
			{Scenario: "scale-route", Load: "closed 1", Status: "new", Now: FiguresOf(&d)},
			{Scenario: "sidecar-http", Load: "closed 32", Status: "gone", Base: FiguresOf(&c)},
		}},
		{name: "empty baseline", now: []Row{a}, want: []Change{
			{Scenario: "direct-http", Load: "closed 1", Status: "new", Now: FiguresOf(&a)},
		}},
		{name: "empty run", base: []Row{a}, want: []Change{
			{Scenario: "direct-http", Load: "closed 1", Status: "gone", Base: FiguresOf(&a)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Compare(&Report{Rows: tc.base}, &Report{Rows: tc.now})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Compare =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestThroughput(t *testing.T) {
	for _, tc := range []struct {
		base, now, want float64
	}{
		{2000, 3000, 1.5},
		{4000, 1000, 0.25},
		{0, 1000, 0}, // new row
		{1000, 0, 0}, // gone row
	} {
		c := Change{Base: Figures{ReqPerSec: tc.base}, Now: Figures{ReqPerSec: tc.now}}
		if got := c.Throughput(); got != tc.want {
			t.Errorf("%v -> %v: %v, want %v", tc.base, tc.now, got, tc.want)
		}
	}
}

func TestChangeStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{latencyChange(400*time.Microsecond, 300*time.Microsecond), "400µs -> 300µs (-25%)"},
		{latencyChange(2*time.Millisecond, 30*time.Millisecond), "2000µs -> 30.0ms (+1400%)"},
		{floatChange(0.2, 0.25, "%.3f"), "0.200 -> 0.250 (+25%)"},
		{floatChange(0, 12, "%.0f"), "0 -> 12"},
		{floatChange(0, 0, "%.0f"), "-"},
		{percent(100, 100), " (+0%)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestWriteComparison reads both runs from their JSON files, as
// natsmesh bench --compare does, and checks each line of the table.
func TestWriteComparison(t *testing.T) {
	ms := time.Millisecond
	base := &Report{Machine: Machine{Revision: "e783041", LoadAvg: 1.5}, Started: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC),
		Rows: []Row{
			row("sidecar-http", "closed 1", 2000, ms/2, 2*ms, Component{Name: "agent-echo", CPUPer1k: 0.1, PeakRSSMB: 30, AllocsPerReq: 100}),
			row("sidecar-http", "closed 32", 5000, 5*ms, 20*ms),
		}}
	now := &Report{Machine: Machine{Revision: "abc123", LoadAvg: 2.5}, Started: time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC),
		Rows: []Row{
			row("sidecar-http", "closed 1", 3000, ms/4, 2*ms, Component{Name: "agent-echo", CPUPer1k: 0.05, PeakRSSMB: 24, AllocsPerReq: 50}),
			row("scale-route", "closed 1", 1500, ms, 4*ms),
		}}
	dir := t.TempDir()
	for name, r := range map[string]*Report{"base.json": base, "now.json": now} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := ReadFile(filepath.Join(dir, "base.json"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := ReadFile(filepath.Join(dir, "now.json"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteComparison(&buf, b, n); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Change from e783041 (2026-12-07 15:00:00, load average 1.50) to abc123 (2026-12-07 16:00:00, load average 2.50)",
		"sidecar-http  closed 1   2000 -> 3000 (1.50x)  500µs -> 250µs (-50%)  2000µs -> 2000µs (+0%)  0.200 -> 0.150 (-25%)  150 -> 100 (-33%)  30.0 -> 24.0 (-20%)",
		"scale-route   closed 1   new: 1500",
		"sidecar-http  closed 32  not run (was 5000)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("ReadFile of a missing file: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(filepath.Join(dir, "bad.json")); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("ReadFile of bad JSON: %v, want an error naming the file", err)
	}
}

// TestWriteTableWithoutTwins: a row with no direct row to compare with
// says so ("-", not "0µs"), and a report without targets (one read back
// with --from, or of scaling alone) prints no Targets heading.
func TestWriteTableWithoutTwins(t *testing.T) {
	ms := time.Millisecond
	r := Report{Rows: []Row{row("sidecar-http", "closed 1", 2000, ms/2, 2*ms)}}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "Targets") {
		t.Errorf("a report without targets printed their heading:\n%s", out)
	}
	var line string
	for l := range strings.Lines(out) {
		if strings.HasPrefix(strings.TrimSpace(l), "sidecar-http") {
			line = l
			break
		}
	}
	if f := strings.Fields(line); len(f) < 9 || f[8] != "-" {
		t.Errorf("+p50 vs direct of a row without direct: fields %q, want \"-\" as the ninth", f)
	}
}
