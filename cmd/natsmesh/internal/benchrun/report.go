package benchrun

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/buildinfo"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/loadgen"
)

// Report is a run's result, also its JSON form.
type Report struct {
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	Rows     []Row    `json:"rows"`
	Skipped  []Skip   `json:"skipped,omitempty"`
	Targets  []Target `json:"targets"`
	// Telemetry is what telemetry costs per call: each scenario with
	// metrics on less its pair without telemetry, load by load.
	Telemetry []Overhead `json:"telemetry_cost,omitempty"`
	Notes     []string   `json:"notes"`
	Started   time.Time  `json:"started"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs      int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Revision  string `json:"git_revision"`
	// LoadAvg is /proc/loadavg's 1-minute load average when the run
	// started: above the CPU count, other work competed with the benchmark.
	LoadAvg float64 `json:"load_avg_start"`
}

// Settings are the loads the run used.
type Settings struct {
	Duration string  `json:"duration_per_load"`
	Rate     float64 `json:"open_loop_rate"` // 0: no open loop ran
	Conns    []int   `json:"closed_loop_conns"`
	Size     int     `json:"body_bytes"`
	// Transfer is the body of each download and upload of the streaming
	// scenarios, StreamMessages the messages of each gRPC stream (of Size
	// bytes each).
	Transfer       int64 `json:"transfer_bytes"`
	StreamMessages int   `json:"stream_messages"`
}

// Skip is a scenario that did not run, and why.
type Skip struct {
	Scenario string `json:"scenario"`
	Reason   string `json:"reason"`
}

// Row is one scenario under one load.
type Row struct {
	Scenario  string  `json:"scenario"`
	Load      string  `json:"load"`
	Conns     int     `json:"conns"`
	Rate      float64 `json:"rate,omitempty"`
	Calls     int64   `json:"calls"`
	Errors    int64   `json:"errors"`
	ReqPerSec float64 `json:"req_per_s"`
	// Latencies, in the JSON as nanoseconds.
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p99_9_ns"`
	Max  time.Duration `json:"max_ns"`
	// AddedP50 is P50 less the direct scenario's of the same protocol
	// (a streaming scenario's: its direct twin's) under the same load.
	AddedP50 time.Duration `json:"added_p50_ns"`
	// MBPerSec is, for a streaming scenario, the payload it moved per
	// second (MB: 10^6 bytes): the bodies of its downloads or uploads, the
	// messages of its gRPC streams. MsgPerSec is, for gRPC streams, their
	// messages per second.
	MBPerSec  float64 `json:"mb_per_s,omitempty"`
	MsgPerSec float64 `json:"msg_per_s,omitempty"`
	// VsDirect is, for a streaming scenario through the sidecar pair, its
	// throughput over its direct twin's under the same load, the two
	// measured side by side.
	VsDirect float64 `json:"vs_direct,omitempty"`
	// LoadAvg is the machine's 1-minute load average at the end of the
	// load, bench included: the noise the figures carry.
	LoadAvg float64 `json:"load_avg"`
	// Client is the bench process: load generator and HTTP or gRPC client,
	// plus, in process, the client-side agent.
	Client     Component   `json:"client"`
	Components []Component `json:"components"`
}

// Component is one process's cost under a load.
type Component struct {
	Name string `json:"name"`
	// CPUPer1k is CPU seconds (user+system) per 1,000 successful calls,
	// which is also CPU cores per 1,000 calls/s.
	CPUPer1k float64 `json:"cpu_s_per_1k_req"`
	// PeakRSSMB is the peak resident set during the load, in MiB (zero for
	// the client, whose figure would include the load generator).
	PeakRSSMB float64 `json:"peak_rss_mib,omitempty"`
	// AllocsPerReq is heap allocations per call: the client's, and each
	// agent's that reports its own (natsmesh agent, through its admin
	// port); zero where not measured.
	AllocsPerReq float64 `json:"allocs_per_req,omitempty"`
}

// Overhead is what telemetry (metrics on, tracing off) costs per call
// under one load: scenario With less its pair Without, which has no
// telemetry at all, both measured in the same run with their loads
// interleaved. A positive figure is a cost.
type Overhead struct {
	With    string `json:"with"`
	Without string `json:"without"`
	Load    string `json:"load"`
	// P50 and P99 are the differences in latency.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Throughput is With's calls per second over Without's (1 for an
	// open loop, which runs at a set rate).
	Throughput float64 `json:"throughput_ratio"`
	// AgentCPU is the difference in CPU microseconds per call of the
	// processes that run the agents: both sidecars, or, in process, the
	// bench process (with the client agent) and the echo process.
	AgentCPU float64 `json:"agent_cpu_us_per_call"`
	// TotalCPU is the same over every process, broker and client
	// included.
	TotalCPU float64 `json:"total_cpu_us_per_call"`
	// Allocs is the difference in heap allocations per call of the
	// agents that count theirs: both sidecars; in process, the bench
	// process (the client agent, beside the load generator).
	Allocs float64 `json:"allocs_per_call"`
}

// Target is one of the benchmark's goals and how the run fared.
type Target struct {
	Name     string `json:"name"`
	Want     string `json:"want"`
	Measured string `json:"measured"`
	Status   string `json:"status"` // PASS, FAIL or SKIP
}

func newReport(o *Options) *Report {
	m := machine()
	if m.Revision == "" {
		m.Revision = o.Revision
	}
	rate := o.Rate
	if rate < 0 {
		rate = 0 // no open loop
	}
	settings := Settings{Duration: o.Duration.String(), Rate: rate, Conns: o.Conns, Size: o.Size,
		Transfer: o.Transfer, StreamMessages: o.StreamMessages}
	return &Report{
		Machine:  m,
		Settings: settings,
		Started:  time.Now().UTC().Truncate(time.Second),
		Notes: []string{
			"sidecar and in-process scenarios run the built-in policy (30s timeout, 3 attempts for calls that never ran, a breaker) and metrics (no tracing) on both agents; the -notel ones no telemetry at all, side by side with their pair (loads interleaved); the +policy ones apply BenchPolicy (route, timeouts, retries with budget, breaker, bulkhead, allow list, rate limit) on both agents; embedded ones no telemetry",
			"every component is its own process on loopback; all share the machine's CPUs with the client",
			"in-process: client agent in the bench process -> broker process -> echo process serving through an in-process agent (Handle, GRPCServer)",
			"gRPC: one HTTP/2 connection carries all concurrent callers",
			"nginx: one worker per proxy, master_process off, HTTP/1.1 keep-alive upstreams",
			"open loop: latency from each call's intended send time (no coordinated omission)",
			fmt.Sprintf("streaming scenarios: one call is one whole stream (a gRPC server stream of %d messages of %d bytes; a download or an upload of %d MiB), closed loops only, the transfers one at a time; each beside its direct twin, loads interleaved", o.StreamMessages, o.Size, o.Transfer>>20),
		},
	}
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if rev, modified := buildinfo.Revision(); rev != "" {
		m.Revision = rev[:min(len(rev), 12)]
		if modified {
			m.Revision += "-dirty"
		}
	}
	return m
}

// loadAvg returns the 1-minute load average, zero if unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func (row *Row) fill(res *loadgen.Result, acc accounting, comps []*proc) {
	row.Calls, row.Errors = res.Calls, res.Errors
	row.ReqPerSec = res.Throughput()
	row.LoadAvg = loadAvg()
	l := res.Latency
	row.P50, row.P90, row.P99, row.P999, row.Max = l.Percentile(0.5), l.Percentile(0.9), l.Percentile(0.99), l.Percentile(0.999), l.Max()
	per1k := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(res.Calls) }
	row.Client = Component{Name: "client", CPUPer1k: per1k(acc.selfCPU), AllocsPerReq: float64(acc.mallocs) / float64(res.Calls)}
	for _, p := range comps {
		c := Component{
			Name:      p.name,
			CPUPer1k:  per1k(acc.cpu[p.pid()]),
			PeakRSSMB: float64(acc.rss[p.pid()]) / (1 << 20),
		}
		if n, ok := acc.procMallocs[p.pid()]; ok {
			c.AllocsPerReq = float64(n) / float64(res.Calls)
		}
		row.Components = append(row.Components, c)
	}
}

// sortRows orders the rows by scenario as order lists them, each
// scenario's loads in the order they ran (the loads of a pair run
// interleaved).
func (r *Report) sortRows(order []string) {
	slices.SortStableFunc(r.Rows, func(a, b Row) int {
		return slices.Index(order, a.Scenario) - slices.Index(order, b.Scenario)
	})
}

// agentCost is the CPU (µs per call) of the processes of row that run
// agents, of every process, and the agents' allocations per call.
func agentCost(row *Row) (agentCPU, totalCPU, allocs float64) {
	inproc := strings.HasPrefix(row.Scenario, "inproc-")
	totalCPU = row.Client.CPUPer1k
	if inproc {
		agentCPU = row.Client.CPUPer1k
		allocs = row.Client.AllocsPerReq
	}
	for _, c := range row.Components {
		totalCPU += c.CPUPer1k
		if strings.HasPrefix(c.Name, "agent-") || (inproc && c.Name == "echo-app") {
			agentCPU += c.CPUPer1k
			allocs += c.AllocsPerReq
		}
	}
	// CPU seconds per 1,000 calls are milliseconds per call.
	return agentCPU * 1000, totalCPU * 1000, allocs
}

// telemetryCost fills r.Telemetry from the rows of each pair.
func (r *Report) telemetryCost() {
	for _, with := range []string{SidecarHTTP, InprocHTTP} {
		without := pairs[with]
		for i := range r.Rows {
			a := &r.Rows[i]
			if a.Scenario != with {
				continue
			}
			b := r.row(without, a.Load)
			if b == nil {
				continue
			}
			aCPU, aTotal, aAllocs := agentCost(a)
			bCPU, bTotal, bAllocs := agentCost(b)
			o := Overhead{With: with, Without: without, Load: a.Load, P50: a.P50 - b.P50, P99: a.P99 - b.P99,
				Throughput: 1, AgentCPU: aCPU - bCPU, TotalCPU: aTotal - bTotal, Allocs: aAllocs - bAllocs}
			if a.Rate == 0 && b.ReqPerSec > 0 {
				o.Throughput = a.ReqPerSec / b.ReqPerSec
			}
			r.Telemetry = append(r.Telemetry, o)
		}
	}
}

func (r *Report) row(scenario, load string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Scenario == scenario && r.Rows[i].Load == load {
			return &r.Rows[i]
		}
	}
	return nil
}

func (r *Report) skipped(scenario string) string {
	for _, s := range r.Skipped {
		if s.Scenario == scenario {
			return s.Reason
		}
	}
	return ""
}

// evaluate fills the added latency, the targets and the cost of
// telemetry.
func (r *Report) evaluate() {
	r.telemetryCost()
	for i := range r.Rows {
		row := &r.Rows[i]
		base := DirectHTTP
		twin, stream := streaming(row.Scenario)
		switch {
		case stream:
			base = twin
		case strings.HasSuffix(row.Scenario, "-grpc"):
			base = DirectGRPC
		}
		if d := r.row(base, row.Load); d != nil {
			row.AddedP50 = row.P50 - d.P50
			if stream && base != row.Scenario && d.ReqPerSec > 0 {
				row.VsDirect = row.ReqPerSec / d.ReqPerSec
			}
		}
	}
	closedN := func(n int) string { return fmt.Sprintf("closed %d", n) }
	openLoad := fmt.Sprintf("open %s/s", trimFloat(r.Settings.Rate))
	if r.Settings.Rate <= 0 {
		// The per-agent costs are judged at the open loop only; without
		// one (--rate 0) they are SKIP, and named so, not "open -1/s".
		openLoad = "open loop"
	}
	hi := 32
	if len(r.Settings.Conns) > 0 {
		hi = slices.Max(r.Settings.Conns)
	}
	ratio := func(name, want, a, b, load string, min float64) {
		t := Target{Name: name, Want: want}
		ra, rb := r.row(a, load), r.row(b, load)
		switch {
		case ra == nil || rb == nil:
			t.Status = "SKIP"
			t.Measured = "not measured"
			if reason := r.skipped(b); reason != "" {
				t.Measured = b + " skipped: " + reason
			}
		default:
			x := ra.ReqPerSec / rb.ReqPerSec
			t.Measured = fmt.Sprintf("%.2fx (%.0f vs %.0f req/s, %s)", x, ra.ReqPerSec, rb.ReqPerSec, load)
			t.Status = passFail(x >= min)
		}
		r.Targets = append(r.Targets, t)
	}
	for _, p := range []struct{ side, direct string }{{SidecarHTTP, DirectHTTP}, {SidecarGRPC, DirectGRPC}} {
		ratio(p.side+" throughput vs "+p.direct, ">= 0.50x at "+closedN(hi), p.side, p.direct, closedN(hi), 0.5)
	}
	ratio(SidecarHTTP+" throughput vs "+NginxPair, ">= 1.00x at "+closedN(hi), SidecarHTTP, NginxPair, closedN(hi), 1)
	for _, p := range []struct{ s, direct string }{{SidecarHTTP, DirectHTTP}, {SidecarGRPC, DirectGRPC}} {
		s := p.s
		t := Target{Name: s + " added p50 latency", Want: "<= 100µs at closed 1"}
		if row := r.row(s, closedN(1)); row != nil && r.row(p.direct, closedN(1)) != nil {
			t.Measured = fmtDur(row.AddedP50)
			t.Status = passFail(row.AddedP50 <= 100*time.Microsecond)
		} else {
			t.Measured, t.Status = "not measured", "SKIP"
		}
		r.Targets = append(r.Targets, t)
	}
	ratio(InprocHTTP+" throughput vs "+DirectHTTP, ">= 1.50x at "+closedN(hi), InprocHTTP, DirectHTTP, closedN(hi), 1.5)
	ratio(InprocGRPC+" throughput vs "+DirectGRPC, ">= 1.50x at "+closedN(hi), InprocGRPC, DirectGRPC, closedN(hi), 1.5)
	ratio(EmbeddedHTTP+" throughput vs "+DirectHTTP, ">= 1.50x at "+closedN(hi), EmbeddedHTTP, DirectHTTP, closedN(hi), 1.5)
	ratio(EmbeddedGRPC+" throughput vs "+DirectGRPC, ">= 1.50x at "+closedN(hi), EmbeddedGRPC, DirectGRPC, closedN(hi), 1.5)
	for _, s := range []string{SidecarHTTP, SidecarGRPC} {
		row := r.row(s, openLoad)
		for _, agent := range []string{"agent-client", "agent-echo"} {
			cpu := Target{Name: s + " " + agent + " CPU", Want: "<= 0.100 cores per 1,000 req/s (" + openLoad + ")"}
			rss := Target{Name: s + " " + agent + " peak RSS", Want: "<= 25 MiB (" + openLoad + ")"}
			c := component(row, agent)
			if r.Settings.Rate <= 0 {
				cpu.Measured, cpu.Status = "not measured: no open loop (rate 0)", "SKIP"
				rss.Measured, rss.Status = cpu.Measured, "SKIP"
			} else if c == nil {
				cpu.Measured, cpu.Status = "not measured", "SKIP"
				rss.Measured, rss.Status = "not measured", "SKIP"
			} else {
				cpu.Measured = fmt.Sprintf("%.3f", c.CPUPer1k)
				cpu.Status = passFail(c.CPUPer1k <= 0.1)
				rss.Measured = fmt.Sprintf("%.1f MiB", c.PeakRSSMB)
				rss.Status = passFail(c.PeakRSSMB <= 25)
			}
			r.Targets = append(r.Targets, cpu, rss)
		}
	}
	// Issue 18: a stream, however long, costs each agent a bounded
	// memory (its window), here under 64 MiB of peak RSS.
	for _, s := range []string{SidecarGRPCStream, SidecarDownload, SidecarUpload} {
		row := r.row(s, closedN(1))
		for _, agent := range []string{"agent-client", "agent-echo"} {
			t := Target{Name: s + " " + agent + " peak RSS", Want: "< 64 MiB (one stream: closed 1)"}
			if c := component(row, agent); c == nil {
				t.Measured, t.Status = "not measured", "SKIP"
			} else {
				t.Measured = fmt.Sprintf("%.1f MiB", c.PeakRSSMB)
				t.Status = passFail(c.PeakRSSMB < 64)
			}
			r.Targets = append(r.Targets, t)
		}
	}
}

func component(row *Row, name string) *Component {
	if row == nil {
		return nil
	}
	for i := range row.Components {
		if row.Components[i].Name == name {
			return &row.Components[i]
		}
	}
	return nil
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

// fmtDur prints a latency in µs below 10ms, in ms above.
func fmtDur(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%s%.0fµs", neg, float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%s%.1fms", neg, float64(d)/float64(time.Millisecond))
}

// fmtDelta is fmtDur with a sign.
func fmtDelta(d time.Duration) string {
	if d >= 0 {
		return "+" + fmtDur(d)
	}
	return fmtDur(d)
}

// WriteTable writes the report as text tables: the measurements, each
// component's cost, the targets, the skipped scenarios and the notes.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "natsmesh bench %s  %s, %d CPUs, %s, %s, load average %.2f at start\n", m.Revision, m.CPUModel, m.CPUs, m.Kernel, m.GoVersion, m.LoadAvg)
	fmt.Fprintf(w, "loads of %s each, %d-byte request and response bodies\n\n", r.Settings.Duration, r.Settings.Size)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tload\treq/s\tp50\tp90\tp99\tp99.9\t+p50 vs direct\terrors\tclient CPU s/1k\tallocs/req\tload avg\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%.3f\t%.0f\t%.1f\t\n",
			row.Scenario, row.Load, row.ReqPerSec, fmtDur(row.P50), fmtDur(row.P90), fmtDur(row.P99), fmtDur(row.P999),
			fmtDur(row.AddedP50), row.Errors, row.Client.CPUPer1k, row.Client.AllocsPerReq, row.LoadAvg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nCPU seconds per 1,000 requests (= cores per 1,000 req/s), peak RSS and, for the agents, heap allocations per request (a) of each component process\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tload\tcomponents\t")
	for _, row := range r.Rows {
		var parts []string
		for _, c := range row.Components {
			part := fmt.Sprintf("%s %.3f %.1fMiB", c.Name, c.CPUPer1k, c.PeakRSSMB)
			if c.AllocsPerReq > 0 {
				part += fmt.Sprintf(" %.0fa", c.AllocsPerReq)
			}
			parts = append(parts, part)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", row.Scenario, row.Load, strings.Join(parts, "  "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeStreams(w); err != nil {
		return err
	}
	if len(r.Telemetry) > 0 {
		fmt.Fprintf(w, "\nCost of telemetry per call: metrics on (tracing off) less no telemetry, the pair's loads interleaved in this run\n\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tload\t+p50\t+p99\treq/s ratio\tagents CPU µs/call\tall CPU µs/call\tagents allocs/call\t")
		for _, o := range r.Telemetry {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%+.1f\t%+.1f\t%+.1f\t\n", o.With, o.Load, fmtDelta(o.P50), fmtDelta(o.P99),
				o.Throughput, o.AgentCPU, o.TotalCPU, o.Allocs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nTargets (ratios measured side by side in this run)\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.Status, t.Name, t.Want, t.Measured)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "\nskipped %s: %s\n", s.Scenario, s.Reason)
	}
	fmt.Fprintf(w, "\nNotes:\n")
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	return nil
}

// writeStreams writes the streaming scenarios' throughput, each beside
// its direct twin, with each agent's peak RSS; nothing when none ran.
func (r *Report) writeStreams(w io.Writer) error {
	var rows []Row
	for _, row := range r.Rows {
		if _, ok := streaming(row.Scenario); ok {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nStreams: payload throughput (MB = 10^6 bytes) through the sidecar pair beside direct, the twins' loads interleaved; a call is one whole stream\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tload\tMB/s\tmsg/s\tvs direct\tstreams/s\tp50 per stream\tagent-client RSS\tagent-echo RSS\techo RSS\t")
	dash := func(v float64, format string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	rss := func(row *Row, name string) string {
		if c := component(row, name); c != nil {
			return fmt.Sprintf("%.1fMiB", c.PeakRSSMB)
		}
		return "-"
	}
	for i := range rows {
		row := &rows[i]
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t\n", row.Scenario, row.Load, row.MBPerSec,
			dash(row.MsgPerSec, "%.0f"), dash(row.VsDirect, "%.2fx"), row.ReqPerSec, fmtDur(row.P50),
			rss(row, "agent-client"), rss(row, "agent-echo"), rss(row, "echo"))
	}
	return tw.Flush()
}
