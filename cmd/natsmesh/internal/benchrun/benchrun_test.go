package benchrun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchreport"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/loadgen"
	"github.com/natsmesh/natsmesh/policies"
)

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no binary", Options{}},
		{"bad scenario", Options{Exe: "x", Scenarios: []string{"carrier-pigeon"}}},
		{"bad conns", Options{Exe: "x", Conns: []int{0}}},
		{"bad size", Options{Exe: "x", Size: -1}},
		{"bad transfer", Options{Exe: "x", Transfer: -1}},
		{"bad stream messages", Options{Exe: "x", StreamMessages: -1}},
		{"bad broker cores", Options{Exe: "x", BrokerProcs: -1}},
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
	if ls := o.loads(DirectHTTP); len(ls) != 3 || ls[0].rate != 1000 {
		t.Errorf("default loads %+v: want open 1000/s, closed 1, closed 32", ls)
	}
	// Streams: closed loops only, and one transfer at a time.
	if ls := o.loads(SidecarGRPCStream); len(ls) != 2 || ls[0].rate != 0 || ls[1].conns != 32 {
		t.Errorf("gRPC stream loads %+v: want closed 1, closed 32", ls)
	}
	if ls := o.loads(SidecarDownload); len(ls) != 1 || ls[0].name != "closed 1" {
		t.Errorf("download loads %+v: want closed 1", ls)
	}
	if o.Transfer != 64<<20 || o.StreamMessages != 1000 {
		t.Errorf("default transfer %d, stream messages %d: want 64 MiB, 1000", o.Transfer, o.StreamMessages)
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
	r.Rows = []benchreport.Row{
		{Scenario: DirectHTTP, Load: "closed 1", P50: 200 * time.Microsecond, ReqPerSec: 4000},
		{Scenario: DirectHTTP, Load: "closed 32", ReqPerSec: 10000},
		{Scenario: SidecarHTTP, Load: "closed 1", P50: 280 * time.Microsecond},
		{Scenario: SidecarHTTP, Load: "closed 32", ReqPerSec: 6000, Errors: 3, FirstError: "status 503 Service Unavailable (overloaded)"},
		{Scenario: SidecarHTTP, Load: "open 1000/s", Components: []benchreport.Component{
			{Name: "agent-client", CPUPer1k: 0.05, PeakRSSMB: 20},
			{Name: "agent-echo", CPUPer1k: 0.2, PeakRSSMB: 30},
		}},
		{Scenario: InprocHTTP, Load: "closed 32", ReqPerSec: 12000},
		{Scenario: InprocGRPC, Load: "closed 1", ReqPerSec: 5000},
		{Scenario: DirectGRPC, Load: "closed 1", ReqPerSec: 4000},
	}
	r.Skipped = []benchreport.Skip{{Scenario: NginxPair, Reason: "nginx not found"}}
	evaluate(r)
	want := map[string]string{
		"sidecar-http throughput vs nginx-pair":              "SKIP",
		"sidecar-http agent-echo CPU per call vs one nginx":  "SKIP",
		"sidecar-http added p50 vs nginx-pair's":             "SKIP",
		"inproc-http throughput vs direct-http, closed 32":   "PASS", // 12000 vs 10000
		"inproc-grpc throughput vs direct-grpc, closed 1":    "PASS",
		"inproc-grpc throughput vs direct-grpc, closed 32":   "SKIP",
		"sidecar-http agent-client CPU":                      "PASS",
		"sidecar-http agent-echo CPU":                        "FAIL",
		"sidecar-http agent-client peak RSS":                 "PASS",
		"sidecar-http agent-echo peak RSS":                   "FAIL",
		"sidecar-grpc-stream messages vs direct-grpc-stream": "SKIP",
	}
	got := map[string]benchreport.Target{}
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
	for _, s := range []string{"sidecar-http", "agent-echo 0.200 30.0MiB", "FAIL", "skipped nginx-pair",
		"sidecar-http, closed 32: 3 errors, the first: status 503 Service Unavailable (overloaded)"} {
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
	r.Rows = []benchreport.Row{{Scenario: SidecarHTTP, Load: "closed 1", P50: time.Millisecond}}
	evaluate(r)
	if r.Settings.Rate != 0 {
		t.Errorf("settings record rate %v, want 0 (no open loop)", r.Settings.Rate)
	}
	n := 0
	for _, tg := range r.Targets {
		if strings.Contains(tg.Want+tg.Measured, "-1") {
			t.Errorf("target %q: want %q, measured %q", tg.Name, tg.Want, tg.Measured)
		}
		if !strings.HasPrefix(tg.Name, SidecarHTTP+" ") && !strings.HasPrefix(tg.Name, SidecarGRPC+" ") {
			continue // the streaming scenarios' are at a closed loop
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
		if got := benchreport.FormatLatency(d); got != want {
			t.Errorf("benchreport.FormatLatency(%v) = %q, want %q", d, got, want)
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

// The telemetry pairs' difference per call, and the rows in scenario
// order although a pair's loads ran interleaved.
func TestTelemetryCost(t *testing.T) {
	o := Options{Exe: "x"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	r := newReport(&o)
	agents := func(cpu, allocs float64) []benchreport.Component {
		return []benchreport.Component{{Name: "echo", CPUPer1k: 0.1}, {Name: "agent-echo", CPUPer1k: cpu, AllocsPerReq: allocs}, {Name: "agent-client", CPUPer1k: cpu, AllocsPerReq: allocs}}
	}
	r.Rows = []benchreport.Row{
		{Scenario: SidecarHTTP, Load: "closed 1", P50: 500 * time.Microsecond, P99: 900 * time.Microsecond, ReqPerSec: 1800, Components: agents(0.110, 90)},
		{Scenario: SidecarHTTPNoTel, Load: "closed 1", P50: 480 * time.Microsecond, P99: 1000 * time.Microsecond, ReqPerSec: 2000, Components: agents(0.100, 88)},
		{Scenario: InprocHTTP, Load: "open 1000/s", Rate: 1000, P50: 300 * time.Microsecond, ReqPerSec: 1000,
			Client: benchreport.Component{CPUPer1k: 0.2, AllocsPerReq: 60}, Components: []benchreport.Component{{Name: "broker", CPUPer1k: 0.1}, {Name: "echo-app", CPUPer1k: 0.15}}},
		{Scenario: InprocHTTPNoTel, Load: "open 1000/s", Rate: 1000, P50: 310 * time.Microsecond, ReqPerSec: 1000,
			Client: benchreport.Component{CPUPer1k: 0.19, AllocsPerReq: 59}, Components: []benchreport.Component{{Name: "broker", CPUPer1k: 0.12}, {Name: "echo-app", CPUPer1k: 0.14}}},
	}
	sortRows(r, Scenarios)
	if r.Rows[0].Scenario != SidecarHTTP || r.Rows[1].Scenario != SidecarHTTPNoTel || r.Rows[2].Scenario != InprocHTTP {
		t.Errorf("rows out of order: %s, %s, %s", r.Rows[0].Scenario, r.Rows[1].Scenario, r.Rows[2].Scenario)
	}
	evaluate(r)
	if len(r.Telemetry) != 2 {
		t.Fatalf("%d telemetry costs, want 2: %+v", len(r.Telemetry), r.Telemetry)
	}
	near := func(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
	side, in := r.Telemetry[0], r.Telemetry[1]
	if side.With != SidecarHTTP || side.P50 != 20*time.Microsecond || side.P99 != -100*time.Microsecond ||
		!near(side.Throughput, 0.9) || !near(side.AgentCPU, 20) || !near(side.TotalCPU, 20) || !near(side.Allocs, 4) {
		t.Errorf("sidecar cost %+v: want +20µs p50, -100µs p99, 0.9x, +20µs agents CPU and in all, +4 allocs", side)
	}
	// In process: the bench process (client agent) and the echo process
	// are the agents; the broker counts in the total only.
	if in.With != InprocHTTP || in.P50 != -10*time.Microsecond || !near(in.Throughput, 1) ||
		!near(in.AgentCPU, 20) || !near(in.TotalCPU, 0) || !near(in.Allocs, 1) {
		t.Errorf("in-process cost %+v: want -10µs p50, 1x (open loop), +20µs agents CPU, 0 in all, +1 alloc", in)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Cost of telemetry per call", "+20µs", "agent-echo 0.110 0.0MiB 0.0cs 0.0rw 90a"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
}

// TestRunTelemetryPairs runs the telemetry groups end to end, briefly: the
// sidecar pair (natsmesh agent with and without --telemetry off, and with
// the route idempotent) and the in-process ones, 200ms per load, from a natsmesh binary built for the
// test. Every load measures calls without errors, the agents count their
// allocations, and the report has the cost of telemetry for both pairs;
// never the speed.
func TestRunTelemetryPairs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds natsmesh and starts processes")
	}
	exe := buildNatsmesh(t)
	var progress bytes.Buffer
	scenarios := []string{SidecarHTTP, SidecarHTTPNoTel, SidecarHTTPIdempotent, InprocHTTP, InprocHTTPNoTel, InprocHTTPIdempotent}
	start := time.Now()
	rep, err := Run(t.Context(), Options{Exe: exe, Duration: 200 * time.Millisecond, Rate: 100, Conns: []int{2},
		Scenarios: scenarios, Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("ran in %v", time.Since(start))
	if len(rep.Rows) != 12 {
		t.Fatalf("%d rows, want 6 scenarios x 2 loads:\n%s", len(rep.Rows), progress.String())
	}
	for i, row := range rep.Rows {
		if want := scenarios[i/2]; row.Scenario != want {
			t.Errorf("row %d is %s, want %s (rows in scenario order)", i, row.Scenario, want)
		}
		if row.Calls == 0 || row.Errors != 0 || row.P50 <= 0 {
			t.Errorf("%s %s: %d calls, %d errors, p50 %v", row.Scenario, row.Load, row.Calls, row.Errors, row.P50)
		}
		for _, c := range row.Components {
			if strings.HasPrefix(c.Name, "agent-") && c.AllocsPerReq <= 0 {
				t.Errorf("%s %s: %s counted no allocations", row.Scenario, row.Load, c.Name)
			}
		}
	}
	if len(rep.Telemetry) != 4 {
		t.Errorf("%d telemetry costs, want 2 pairs x 2 loads: %+v", len(rep.Telemetry), rep.Telemetry)
	}
}

// The streaming scenarios: the throughput of each beside its direct twin,
// the added time per stream against the twin, and each agent's peak RSS
// against 64 MiB at one stream.
func TestStreamTargets(t *testing.T) {
	o := Options{Exe: "x"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	r := newReport(&o)
	agents := func(client, echo float64) []benchreport.Component {
		return []benchreport.Component{{Name: "echo", PeakRSSMB: 20}, {Name: "agent-echo", PeakRSSMB: echo}, {Name: "agent-client", PeakRSSMB: client}}
	}
	r.Rows = []benchreport.Row{
		{Scenario: DirectDownload, Load: "closed 1", ReqPerSec: 40, MBPerSec: 2684.4, P50: 25 * time.Millisecond},
		{Scenario: SidecarDownload, Load: "closed 1", ReqPerSec: 5, MBPerSec: 335.5, P50: 200 * time.Millisecond, Components: agents(30, 70)},
		{Scenario: DirectGRPCStream, Load: "closed 1", ReqPerSec: 100, MBPerSec: 102.4, MsgPerSec: 100000},
		{Scenario: SidecarGRPCStream, Load: "closed 1", ReqPerSec: 25, MBPerSec: 25.6, MsgPerSec: 25000, Components: agents(30, 31)},
	}
	evaluate(r)
	if v := r.Rows[1].VsDirect; v < 0.1249 || v > 0.1251 {
		t.Errorf("download vs direct %v, want 0.125", v)
	}
	if a := r.Rows[1].AddedP50; a != 175*time.Millisecond {
		t.Errorf("download added p50 %v, want 175ms (against its direct twin)", a)
	}
	if r.Rows[0].VsDirect != 0 || r.Rows[2].VsDirect != 0 {
		t.Errorf("a direct twin has a ratio to itself: %v, %v", r.Rows[0].VsDirect, r.Rows[2].VsDirect)
	}
	want := map[string]string{
		"sidecar-http-download agent-client peak RSS": "PASS",
		"sidecar-http-download agent-echo peak RSS":   "FAIL",
		"sidecar-grpc-stream agent-echo peak RSS":     "PASS",
		"sidecar-http-upload agent-client peak RSS":   "SKIP",
	}
	got := map[string]string{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg.Status
	}
	for name, status := range want {
		if got[name] != status {
			t.Errorf("%s: %s, want %s", name, got[name], status)
		}
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Streams: payload throughput", "335.5", "0.12x", "25000", "70.0MiB"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
}

// The bench's POSTs are idempotent under IdempotentPolicy, and only there:
// otherwise the -idempotent scenarios would measure the plain ones' path.
func TestIdempotentPolicy(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       bool
	}{{"idempotent", IdempotentPolicy, true}, {"bench", BenchPolicy, false}} {
		f, err := policies.Parse(c.name+".yaml", []byte(c.text))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r, ok := f.MatchRoute("echo", policies.MatchInput{Proto: policies.ProtoHTTP, Method: "POST", Path: "/echo"})
		if !ok {
			t.Fatalf("%s: the bench's POST /echo matches no route", c.name)
		}
		if got := *f.Policy("echo", r.Name).Idempotent; got != c.want {
			t.Errorf("%s: the bench's POST /echo idempotent %v, want %v", c.name, got, c.want)
		}
	}
}

// A group starts from whichever member comes first, with the others; a
// scenario is in one group at most.
func TestPartners(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range groups {
		for _, n := range g {
			if seen[n] {
				t.Errorf("%s is in two groups", n)
			}
			seen[n] = true
		}
	}
	for _, c := range []struct {
		scenario string
		want     []string
	}{
		{SidecarHTTP, []string{SidecarHTTPNoTel, SidecarHTTPIdempotent}},
		{SidecarHTTPIdempotent, []string{SidecarHTTP, SidecarHTTPNoTel}},
		{InprocHTTPNoTel, []string{InprocHTTP, InprocHTTPIdempotent}},
		{SidecarDownload, []string{DirectDownload}},
		{ScaleRouteSame, []string{ScaleRouteHop}},
		{DirectHTTP, nil},
		{SidecarHTTPPolicy, nil},
	} {
		if got := partners(c.scenario); !slices.Equal(got, c.want) {
			t.Errorf("partners(%s) = %v, want %v", c.scenario, got, c.want)
		}
	}
}

// TestRunStreams runs the streaming scenarios end to end, briefly and
// small (1 MiB transfers, 100-message gRPC streams, 200ms per load): each
// twin pair side by side, every load moving bytes without errors, the
// sidecar rows with their ratio to direct and each agent's peak RSS;
// never the speed.
func TestRunStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds natsmesh and starts processes")
	}
	exe := buildNatsmesh(t)
	var progress bytes.Buffer
	// In the order a user might give them, sidecars first: each pair
	// still runs together, and the rows come in this order.
	scenarios := []string{SidecarDownload, DirectDownload, DirectUpload, SidecarUpload, DirectGRPCStream, SidecarGRPCStream}
	rep, err := Run(t.Context(), Options{Exe: exe, Duration: 200 * time.Millisecond, Conns: []int{1, 2},
		Transfer: 1 << 20, StreamMessages: 100, Scenarios: scenarios, Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	// Downloads and uploads at closed 1, gRPC streams at closed 1 and 2.
	if len(rep.Rows) != 8 {
		t.Fatalf("%d rows, want 8:\n%s", len(rep.Rows), progress.String())
	}
	for _, row := range rep.Rows {
		if row.Calls == 0 || row.Errors != 0 || row.MBPerSec <= 0 {
			t.Errorf("%s %s: %d calls, %d errors, %.1f MB/s", row.Scenario, row.Load, row.Calls, row.Errors, row.MBPerSec)
		}
		_, twin := streamTwins[row.Scenario]
		if twin != (row.VsDirect > 0) {
			t.Errorf("%s %s: %.2fx direct", row.Scenario, row.Load, row.VsDirect)
		}
		if strings.HasSuffix(row.Scenario, "-grpc-stream") != (row.MsgPerSec > 0) {
			t.Errorf("%s %s: %.0f messages/s", row.Scenario, row.Load, row.MsgPerSec)
		}
		if twin {
			for _, agent := range []string{"agent-client", "agent-echo"} {
				if c := row.Component(agent); c == nil || c.PeakRSSMB <= 0 {
					t.Errorf("%s %s: no peak RSS of %s", row.Scenario, row.Load, agent)
				}
			}
		}
	}
	if rep.Rows[0].Scenario != SidecarDownload || rep.Rows[1].Scenario != DirectDownload {
		t.Errorf("rows out of order: %s, %s", rep.Rows[0].Scenario, rep.Rows[1].Scenario)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
}

// TestScalingNames: every scaling scenario parses back to its dimension
// and value, and Options accepts them only by name.
func TestScalingNames(t *testing.T) {
	want := []string{"scale-services-1", "scale-services-100", "scale-services-1000", "scale-body-1KiB", "scale-body-64KiB",
		"scale-body-1MiB", "scale-conns", "scale-route-same", "scale-route-hop"}
	if strings.Join(ScalingScenarios, ",") != strings.Join(want, ",") {
		t.Errorf("ScalingScenarios = %v, want %v", ScalingScenarios, want)
	}
	for name, dim := range map[string]string{"scale-services-1000": "services 1000", "scale-body-64KiB": "body 65536",
		"scale-body-1MiB": "body 1048576", "scale-conns": "conns 0", "scale-route-hop": "route 1", "scale-route-same": "route 0"} {
		d, v, ok := scaling(name)
		if got := fmt.Sprintf("%s %d", d, v); !ok || got != dim {
			t.Errorf("scaling(%q) = %q, %v; want %q", name, got, ok, dim)
		}
	}
	for _, name := range []string{"scale-body-2KiB", "scale-services-x", "sidecar-http"} {
		if _, _, ok := scaling(name); ok {
			t.Errorf("scaling(%q): a scaling scenario", name)
		}
	}
	if got := scaleLoads(ScaleConns); len(got) != 3 || got[2].conns != 256 {
		t.Errorf("scale-conns loads %+v, want closed 1, 32 and 256", got)
	}
	o := Options{Exe: "x", Scaling: true}
	if err := o.defaults(); err != nil || strings.Join(o.Scenarios, ",") != strings.Join(want, ",") {
		t.Errorf("--scaling alone: scenarios %v, %v", o.Scenarios, err)
	}
	o = Options{Exe: "x", Scenarios: []string{DirectHTTP}, Scaling: true}
	if err := o.defaults(); err != nil || len(o.Scenarios) != 1+len(want) || o.Scenarios[0] != DirectHTTP {
		t.Errorf("--scaling with direct-http: scenarios %v, %v", o.Scenarios, err)
	}
	o = Options{Exe: "x", Scenarios: []string{"scale-services-7"}}
	if err := o.defaults(); !errors.Is(err, ErrConfig) {
		t.Errorf("scale-services-7: %v, want ErrConfig", err)
	}
}

// TestRunScaling runs the services and route scaling scenarios briefly:
// the thousand subscriptions of 99 services' instances reach the broker,
// and the route hop's pair runs on three brokers each.
func TestRunScaling(t *testing.T) {
	if testing.Short() {
		t.Skip("builds natsmesh and starts processes")
	}
	exe := buildNatsmesh(t)
	rep, err := Run(t.Context(), Options{Exe: exe, Duration: 300 * time.Millisecond,
		Scenarios: []string{"scale-services-1", "scale-services-100", ScaleRouteSame, ScaleRouteHop}})
	if err != nil {
		t.Fatal(err)
	}
	subs := map[string]int{}
	for _, row := range rep.Rows {
		if row.Scale == nil || row.Calls == 0 || row.Errors != 0 || row.Scale.BrokerRSSMB <= 0 {
			t.Errorf("%s %s: scale %+v, %d calls, %d errors", row.Scenario, row.Load, row.Scale, row.Calls, row.Errors)
			continue
		}
		subs[row.Scenario] = row.Scale.BrokerSubs
		brokers := 0
		for _, c := range row.Components {
			if strings.HasPrefix(c.Name, "broker") {
				brokers++
			}
		}
		if want := map[bool]int{true: 3, false: 1}[row.Scale.Dimension == "route"]; brokers != want {
			t.Errorf("%s: %d brokers, want %d", row.Scenario, brokers, want)
		}
	}
	// Each of 99 services' two instances: a queue subscription, a reply
	// inbox and nine discovery subjects.
	if d := subs["scale-services-100"] - subs["scale-services-1"]; d < 99*2*11 {
		t.Errorf("broker subscriptions %v: 100 services add %d, want at least %d", subs, d, 99*2*11)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Scaling:", "route hop", "same broker"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// buildNatsmesh builds the natsmesh binary for a test that runs the bench.
func buildNatsmesh(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "natsmesh")
	if out, err := exec.Command("go", "build", "-o", exe, "../..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// TestLoadWithoutSuccess: a measured load whose every call failed is a
// row (no throughput, no per-call figures, its errors and the first one),
// and a ratio over it fails rather than divide by zero.
func TestLoadWithoutSuccess(t *testing.T) {
	var row benchreport.Row
	res := &loadgen.Result{Latency: &loadgen.Recorder{}, Errors: 12, FirstError: errors.New("status 503 Service Unavailable (overloaded)"), Elapsed: time.Second}
	fill(&row, res, accounting{self: counters{cpu: time.Second, ctxSwitch: 10}, mallocs: 100}, nil)
	if row.Calls != 0 || row.Errors != 12 || row.ReqPerSec != 0 || row.FirstError != "status 503 Service Unavailable (overloaded)" {
		t.Errorf("row %+v", row)
	}
	if c := row.Client; c.CPUPer1k != 0 || c.AllocsPerReq != 0 || c.CtxSwitchPerReq != 0 {
		t.Errorf("per-call figures of no call: %+v", c)
	}
	o := Options{Exe: "x"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	r := newReport(&o)
	r.Rows = []benchreport.Row{{Scenario: SidecarHTTP, Load: "closed 32", ReqPerSec: 3000, Calls: 9000, P50: time.Millisecond},
		{Scenario: DirectHTTP, Load: "closed 32", Calls: 0, Errors: 5},
		{Scenario: SidecarHTTP, Load: "closed 1", Calls: 0, Errors: 5},
		{Scenario: DirectHTTP, Load: "closed 1", Calls: 100, P50: 50 * time.Microsecond}}
	evaluate(r)
	if got := r.Find(SidecarHTTP, "closed 1").AddedP50; got != 0 {
		t.Errorf("added p50 of a load without a call: %v, want none", got)
	}
	for _, tg := range r.Targets {
		if tg.Name == "sidecar-http throughput vs direct-http" && (tg.Status != "FAIL" || !strings.Contains(tg.Measured, "no call of direct-http")) {
			t.Errorf("target over a load without success: %+v", tg)
		}
	}
}
