package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/buildinfo"
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
	// BrokerProcs is the cores every broker process ran on (natsmesh
	// broker --procs); zero: every core.
	BrokerProcs int `json:"broker_procs,omitempty"`
}

// Skip is a scenario that did not run, and why.
type Skip struct {
	Scenario string `json:"scenario"`
	Reason   string `json:"reason"`
}

// Row is one scenario under one load.
type Row struct {
	Scenario string  `json:"scenario"`
	Load     string  `json:"load"`
	Conns    int     `json:"conns"`
	Rate     float64 `json:"rate,omitempty"`
	Calls    int64   `json:"calls"`
	Errors   int64   `json:"errors"`
	// FirstError is the first failed call's error, when one failed.
	FirstError string  `json:"first_error,omitempty"`
	ReqPerSec  float64 `json:"req_per_s"`
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
	// Scale is, for a scaling scenario's row (natsmesh bench --scaling),
	// what grew and the broker's state before the load.
	Scale *Scale `json:"scale,omitempty"`
}

// Scale is what a scaling row scaled, and the broker it ran on.
type Scale struct {
	// Dimension is "services", "body", "conns" or "route"; Value its
	// size in this row: "1000", "64KiB", "per load", "route hop".
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
	// BrokerSubs and BrokerRSSMB are the subscriptions and resident
	// memory (MiB) of the broker the calling agent is connected to, from
	// its /varz with every service registered, before the load.
	BrokerSubs  int     `json:"broker_subscriptions"`
	BrokerRSSMB float64 `json:"broker_rss_mib"`
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
	// CtxSwitchPerReq is context switches per call, every thread's,
	// voluntary and not; RWSyscallsPerReq the read-like and write-like
	// system calls per call (read, write, readv, writev, sendmsg, ...;
	// futex, epoll_pwait and the rest are not counted by the kernel
	// there).
	CtxSwitchPerReq  float64 `json:"ctx_switches_per_req,omitempty"`
	RWSyscallsPerReq float64 `json:"rw_syscalls_per_req,omitempty"`
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

// CurrentMachine describes this machine, the running Go and, from the
// binary's build information, the source revision.
func CurrentMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: LoadAvg()}
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

// LoadAvg returns the 1-minute load average, zero if unknown.
func LoadAvg() float64 {
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

// Find returns the row of scenario under load, nil if there is none.
func (r *Report) Find(scenario, load string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Scenario == scenario && r.Rows[i].Load == load {
			return &r.Rows[i]
		}
	}
	return nil
}

// SkipReason is why scenario was skipped, "" if it was not.
func (r *Report) SkipReason(scenario string) string {
	for _, s := range r.Skipped {
		if s.Scenario == scenario {
			return s.Reason
		}
	}
	return ""
}

// Component returns the component of row named name; nil if there is
// none or row is nil.
func (row *Row) Component(name string) *Component {
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

func FormatLatency(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%s%.0fµs", neg, float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%s%.1fms", neg, float64(d)/float64(time.Millisecond))
}

// addedP50 is a row's p50 over direct's, or "-" where there is none to
// compare with (the direct row itself, or no direct row at its load).
func addedP50(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return FormatLatency(d)
}

// fmtDelta is FormatLatency with a sign.
func fmtDelta(d time.Duration) string {
	if d >= 0 {
		return "+" + FormatLatency(d)
	}
	return FormatLatency(d)
}

// WriteTable writes the report as text tables: the measurements, each
// component's cost, the targets, the skipped scenarios and the notes.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "natsmesh bench %s  %s, %d CPUs, %s, %s, load average %.2f at start\n", m.Revision, m.CPUModel, m.CPUs, m.Kernel, m.GoVersion, m.LoadAvg)
	fmt.Fprintf(w, "loads of %s each, %d-byte request and response bodies\n\n", r.Settings.Duration, r.Settings.Size)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tload\treq/s\tp50\tp90\tp99\tp99.9\t+p50 vs direct\terrors\tclient CPU s/1k\tallocs/req\tall cs/req\tall rw/req\tload avg\t")
	for _, row := range r.Rows {
		cs, rw := row.Client.CtxSwitchPerReq, row.Client.RWSyscallsPerReq
		for _, c := range row.Components {
			cs, rw = cs+c.CtxSwitchPerReq, rw+c.RWSyscallsPerReq
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%.3f\t%.0f\t%.1f\t%.1f\t%.1f\t\n",
			row.Scenario, row.Load, row.ReqPerSec, FormatLatency(row.P50), FormatLatency(row.P90), FormatLatency(row.P99), FormatLatency(row.P999),
			addedP50(row.AddedP50), row.Errors, row.Client.CPUPer1k, row.Client.AllocsPerReq, cs, rw, row.LoadAvg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, row := range r.Rows {
		if row.FirstError != "" {
			fmt.Fprintf(w, "%s, %s: %d errors, the first: %s\n", row.Scenario, row.Load, row.Errors, row.FirstError)
		}
	}
	fmt.Fprintf(w, "\nCPU seconds per 1,000 requests (= cores per 1,000 req/s), peak RSS, context switches (cs) and read/write system calls (rw) per request and, for the agents, heap allocations per request (a) of each component process\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tload\tcomponents\t")
	for _, row := range r.Rows {
		var parts []string
		for _, c := range row.Components {
			part := fmt.Sprintf("%s %.3f %.1fMiB %.1fcs %.1frw", c.Name, c.CPUPer1k, c.PeakRSSMB, c.CtxSwitchPerReq, c.RWSyscallsPerReq)
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
	if err := r.writeScaling(w); err != nil {
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
	if len(r.Targets) > 0 {
		// A report read back with --from, or one of scaling alone, may
		// have none.
		fmt.Fprintf(w, "\nTargets (ratios measured side by side in this run)\n\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.Status, t.Name, t.Want, t.Measured)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
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
		if row.MBPerSec > 0 { // only a streaming scenario moves a payload
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
		if c := row.Component(name); c != nil {
			return fmt.Sprintf("%.1fMiB", c.PeakRSSMB)
		}
		return "-"
	}
	for i := range rows {
		row := &rows[i]
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t\n", row.Scenario, row.Load, row.MBPerSec,
			dash(row.MsgPerSec, "%.0f"), dash(row.VsDirect, "%.2fx"), row.ReqPerSec, FormatLatency(row.P50),
			rss(row, "agent-client"), rss(row, "agent-echo"), rss(row, "echo"))
	}
	return tw.Flush()
}

// writeScaling writes the scaling rows: latency, throughput and the
// broker's memory as one dimension grows; nothing when none ran.
func (r *Report) writeScaling(w io.Writer) error {
	var rows []*Row
	for i := range r.Rows {
		if r.Rows[i].Scale != nil {
			rows = append(rows, &r.Rows[i])
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nScaling: the sidecar HTTP pair as one thing grows (broker subscriptions and RSS before the load, with everything registered)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dimension\tvalue\tload\treq/s\tp50\tp99\tbroker subs\tbroker RSS\tbroker peak RSS\tbrokers CPU s/1k\tagents CPU s/1k\tagents peak RSS\tload avg\t")
	for _, row := range rows {
		var brokerCPU, brokerPeak, agentsCPU, agentsPeak float64
		for _, c := range row.Components {
			switch {
			case c.Name == "broker":
				brokerCPU, brokerPeak = c.CPUPer1k, c.PeakRSSMB
			case strings.HasPrefix(c.Name, "broker-"):
				brokerCPU += c.CPUPer1k // the cluster's other brokers: a hop's CPU
			case strings.HasPrefix(c.Name, "agent-"):
				agentsCPU += c.CPUPer1k
				agentsPeak = max(agentsPeak, c.PeakRSSMB)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%d\t%.1fMiB\t%.1fMiB\t%.3f\t%.3f\t%.1fMiB\t%.1f\t\n", row.Scale.Dimension, row.Scale.Value,
			row.Load, row.ReqPerSec, FormatLatency(row.P50), FormatLatency(row.P99), row.Scale.BrokerSubs, row.Scale.BrokerRSSMB,
			brokerPeak, brokerCPU, agentsCPU, agentsPeak, row.LoadAvg)
	}
	return tw.Flush()
}
