package benchrun

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchproc"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchreport"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/loadgen"
)

func newReport(o *Options) *benchreport.Report {
	m := benchreport.CurrentMachine()
	if m.Revision == "" {
		m.Revision = o.Revision
	}
	rate := o.Rate
	if rate < 0 {
		rate = 0 // no open loop
	}
	settings := benchreport.Settings{Duration: o.Duration.String(), Rate: rate, Conns: o.Conns, Size: o.Size,
		Transfer: o.Transfer, StreamMessages: o.StreamMessages, BrokerProcs: o.BrokerProcs}
	rep := &benchreport.Report{
		Machine:  m,
		Settings: settings,
		Started:  time.Now().UTC().Truncate(time.Second),
		Notes: []string{
			"sidecar and in-process scenarios run the built-in policy (30s timeout, 3 attempts for calls that never ran, a breaker) and metrics (no tracing) on both agents; the -notel ones no telemetry at all, side by side with their pair (loads interleaved); the -idempotent ones mark the POSTs' route idempotent in a mesh file (two NATS messages a call, not the four of the confirm exchange that keeps a call at most once; their agents also run that file's middleware, routing and authorization among it), side by side with their pair; the +policy ones apply BenchPolicy (route, timeouts, retries with budget, breaker, bulkhead, allow list, rate limit) on both agents; embedded ones no telemetry",
			"every component is its own process on loopback; all share the machine's CPUs with the client",
			"in-process: client agent in the bench process -> broker process -> echo process serving through an in-process agent (Handle, GRPCServer)",
			"gRPC: one HTTP/2 connection carries all concurrent callers",
			"nginx: one worker per proxy, master_process off, HTTP/1.1 keep-alive upstreams",
			"open loop: latency from each call's intended send time (no coordinated omission)",
			fmt.Sprintf("streaming scenarios: one call is one whole stream (a gRPC server stream of %d messages of %d bytes; a download or an upload of %d MiB), closed loops only, the transfers one at a time; each beside its direct twin, loads interleaved", o.StreamMessages, o.Size, o.Transfer>>20),
			"cs and rw: context switches (every thread's) and read/write system calls (/proc/<pid>/io syscr+syscw: not futex, epoll_pwait or nanosleep) per call",
		},
	}
	if o.BrokerProcs > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("brokers: natsmesh broker --procs %d (every core by default)", o.BrokerProcs))
	}
	if o.Profile != "" {
		rep.Notes = append(rep.Notes, "profiled (--profile "+o.Profile+"): each process's CPU figures include its profiler's cost")
	}
	if o.Scaling {
		rep.Notes = append(rep.Notes, "scaling: the sidecar HTTP pair, closed loops; services: each of N-1 other services' two instances subscribes what an agent does (queue group, reply inbox, 9 discovery subjects) on a NATS connection of its own; route: three broker processes routed on loopback, no JetStream")
	}
	return rep
}

func fill(row *benchreport.Row, res *loadgen.Result, acc accounting, comps []*benchproc.Proc) {
	row.Calls, row.Errors = res.Calls, res.Errors
	if res.Errors > 0 && res.FirstError != nil {
		row.FirstError = res.FirstError.Error()
	}
	row.ReqPerSec = res.Throughput()
	row.LoadAvg = benchreport.LoadAvg()
	l := res.Latency
	row.P50, row.P90, row.P99, row.P999, row.Max = l.Percentile(0.5), l.Percentile(0.9), l.Percentile(0.99), l.Percentile(0.999), l.Max()
	// Per successful call; none when no call succeeded (the row then
	// says so by its errors).
	perCall := func(n float64) float64 {
		if res.Calls == 0 {
			return 0
		}
		return n / float64(res.Calls)
	}
	per1k := func(d time.Duration) float64 { return perCall(d.Seconds() * 1000) }
	row.Client = benchreport.Component{Name: "client", CPUPer1k: per1k(acc.self.cpu), AllocsPerReq: perCall(float64(acc.mallocs)),
		CtxSwitchPerReq: perCall(float64(acc.self.ctxSwitch)), RWSyscallsPerReq: perCall(float64(acc.self.rwSyscalls))}
	for _, p := range comps {
		used := acc.used[p.PID()]
		c := benchreport.Component{
			Name:             p.Name,
			CPUPer1k:         per1k(used.cpu),
			PeakRSSMB:        float64(acc.rss[p.PID()]) / (1 << 20),
			CtxSwitchPerReq:  perCall(float64(used.ctxSwitch)),
			RWSyscallsPerReq: perCall(float64(used.rwSyscalls)),
		}
		if n, ok := acc.procMallocs[p.PID()]; ok {
			c.AllocsPerReq = perCall(float64(n))
		}
		row.Components = append(row.Components, c)
	}
}

// sortRows orders the rows by scenario as order lists them, each
// scenario's loads in the order they ran (the loads of a pair run
// interleaved).
func sortRows(r *benchreport.Report, order []string) {
	slices.SortStableFunc(r.Rows, func(a, b benchreport.Row) int {
		return slices.Index(order, a.Scenario) - slices.Index(order, b.Scenario)
	})
}

// agentCost is the CPU (µs per call) of the processes of row that run
// agents, of every process, and the agents' allocations per call.
func agentCost(row *benchreport.Row) (agentCPU, totalCPU, allocs float64) {
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
func telemetryCost(r *benchreport.Report) {
	for _, pair := range [][2]string{{SidecarHTTP, SidecarHTTPNoTel}, {InprocHTTP, InprocHTTPNoTel}} {
		with, without := pair[0], pair[1]
		for i := range r.Rows {
			a := &r.Rows[i]
			if a.Scenario != with {
				continue
			}
			b := r.Find(without, a.Load)
			if b == nil {
				continue
			}
			aCPU, aTotal, aAllocs := agentCost(a)
			bCPU, bTotal, bAllocs := agentCost(b)
			o := benchreport.Overhead{With: with, Without: without, Load: a.Load, P50: a.P50 - b.P50, P99: a.P99 - b.P99,
				Throughput: 1, AgentCPU: aCPU - bCPU, TotalCPU: aTotal - bTotal, Allocs: aAllocs - bAllocs}
			if a.Rate == 0 && b.ReqPerSec > 0 {
				o.Throughput = a.ReqPerSec / b.ReqPerSec
			}
			r.Telemetry = append(r.Telemetry, o)
		}
	}
}

// telemetry.
func evaluate(r *benchreport.Report) {
	telemetryCost(r)
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Scale != nil || (row.Calls == 0 && row.Errors > 0) {
			continue // a scaling row's body or broker is not direct's; no call, no latency
		}
		base := DirectHTTP
		twin, stream := streaming(row.Scenario)
		switch {
		case stream:
			base = twin
		case strings.HasSuffix(row.Scenario, "-grpc"):
			base = DirectGRPC
		}
		if d := r.Find(base, row.Load); d != nil {
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
		t := benchreport.Target{Name: name, Want: want}
		ra, rb := r.Find(a, load), r.Find(b, load)
		switch {
		case ra == nil || rb == nil:
			t.Status = "SKIP"
			t.Measured = "not measured"
			if reason := r.SkipReason(b); reason != "" {
				t.Measured = b + " skipped: " + reason
			}
		case rb.ReqPerSec == 0:
			t.Status = "FAIL"
			t.Measured = fmt.Sprintf("no call of %s succeeded (%s)", b, load)
		default:
			x := ra.ReqPerSec / rb.ReqPerSec
			t.Measured = fmt.Sprintf("%.2fx (%.0f vs %.0f req/s, %s)", x, ra.ReqPerSec, rb.ReqPerSec, load)
			t.Status = passFail(x >= min)
		}
		r.Targets = append(r.Targets, t)
	}
	// Issue 20's targets: the sidecar pair against the classic pair of
	// nginx reverse proxies (throughput, each agent's CPU per call
	// against one nginx's, added p50), in process and embedded against
	// direct, streams against direct.
	ratio(SidecarHTTP+" throughput vs "+NginxPair, ">= 0.65x at "+closedN(hi), SidecarHTTP, NginxPair, closedN(hi), 0.65)
	for _, agent := range []string{"agent-client", "agent-echo"} {
		t := benchreport.Target{Name: SidecarHTTP + " " + agent + " CPU per call vs one nginx", Want: "<= 1.50x at " + closedN(hi)}
		c, n := r.Find(SidecarHTTP, closedN(hi)).Component(agent), r.Find(NginxPair, closedN(hi)).Component("nginx-a")
		if c == nil || n == nil || n.CPUPer1k <= 0 {
			t.Measured, t.Status = "not measured", "SKIP"
			if reason := r.SkipReason(NginxPair); reason != "" {
				t.Measured = NginxPair + " skipped: " + reason
			}
		} else {
			x := c.CPUPer1k / n.CPUPer1k
			t.Measured = fmt.Sprintf("%.2fx (%.3f vs %.3f s/1k)", x, c.CPUPer1k, n.CPUPer1k)
			t.Status = passFail(x <= 1.5)
		}
		r.Targets = append(r.Targets, t)
	}
	{
		t := benchreport.Target{Name: SidecarHTTP + " added p50 vs " + NginxPair + "'s", Want: "<= 2.00x at closed 1"}
		s, n := r.Find(SidecarHTTP, closedN(1)), r.Find(NginxPair, closedN(1))
		switch {
		case s == nil || n == nil || r.Find(DirectHTTP, closedN(1)) == nil:
			t.Measured, t.Status = "not measured", "SKIP"
			if reason := r.SkipReason(NginxPair); reason != "" {
				t.Measured = NginxPair + " skipped: " + reason
			}
		default:
			nginx := max(n.AddedP50, time.Microsecond)
			x := float64(s.AddedP50) / float64(nginx)
			t.Measured = fmt.Sprintf("%.2fx (%s vs %s)", x, benchreport.FormatLatency(s.AddedP50), benchreport.FormatLatency(n.AddedP50))
			t.Status = passFail(x <= 2)
		}
		r.Targets = append(r.Targets, t)
	}
	for _, l := range []string{closedN(1), closedN(hi)} {
		ratio(InprocHTTP+" throughput vs "+DirectHTTP+", "+l, ">= 1.00x at "+l, InprocHTTP, DirectHTTP, l, 1)
		ratio(InprocGRPC+" throughput vs "+DirectGRPC+", "+l, ">= 1.00x at "+l, InprocGRPC, DirectGRPC, l, 1)
		ratio(EmbeddedHTTP+" throughput vs "+DirectHTTP+", "+l, ">= 1.50x at "+l, EmbeddedHTTP, DirectHTTP, l, 1.5)
		ratio(EmbeddedGRPC+" throughput vs "+DirectGRPC+", "+l, ">= 1.50x at "+l, EmbeddedGRPC, DirectGRPC, l, 1.5)
	}
	ratio(SidecarGRPCStream+" messages vs "+DirectGRPCStream, ">= 0.50x at "+closedN(1), SidecarGRPCStream, DirectGRPCStream, closedN(1), 0.5)
	ratio(SidecarDownload+" MB/s vs "+DirectDownload, ">= 0.50x at closed 1", SidecarDownload, DirectDownload, closedN(1), 0.5)
	for _, s := range []string{SidecarHTTP, SidecarGRPC} {
		row := r.Find(s, openLoad)
		for _, agent := range []string{"agent-client", "agent-echo"} {
			cpu := benchreport.Target{Name: s + " " + agent + " CPU", Want: "<= 0.100 cores per 1,000 req/s (" + openLoad + ")"}
			rss := benchreport.Target{Name: s + " " + agent + " peak RSS", Want: "<= 25 MiB (" + openLoad + ")"}
			c := row.Component(agent)
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
		row := r.Find(s, closedN(1))
		for _, agent := range []string{"agent-client", "agent-echo"} {
			t := benchreport.Target{Name: s + " " + agent + " peak RSS", Want: "< 64 MiB (one stream: closed 1)"}
			if c := row.Component(agent); c == nil {
				t.Measured, t.Status = "not measured", "SKIP"
			} else {
				t.Measured = fmt.Sprintf("%.1f MiB", c.PeakRSSMB)
				t.Status = passFail(c.PeakRSSMB < 64)
			}
			r.Targets = append(r.Targets, t)
		}
	}
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
