package benchrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchecho"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchproc"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchreport"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/loadgen"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// Scenario names, in the order they run.
const (
	DirectHTTP  = "direct-http"
	DirectGRPC  = "direct-grpc"
	SidecarHTTP = "sidecar-http"
	SidecarGRPC = "sidecar-grpc"
	InprocHTTP  = "inproc-http"
	InprocGRPC  = "inproc-grpc"
	// Embedded: one process holds the caller, the broker (embedded, reached
	// through in-process connections, no TCP) and the service: the
	// single-binary mode of the agent library.
	EmbeddedHTTP = "embedded-http"
	EmbeddedGRPC = "embedded-grpc"
	NginxPair    = "nginx-pair"
	// The sidecar and in-process HTTP scenarios again, with BenchPolicy
	// applied by every agent, so the table shows what a realistic policy
	// costs over the built-in one.
	SidecarHTTPPolicy = "sidecar-http+policy"
	InprocHTTPPolicy  = "inproc-http+policy"
	// The sidecar and in-process HTTP scenarios again with no telemetry
	// at all (natsmesh agent --telemetry off; an in-process agent without
	// a Telemetry): the plain ones record metrics, tracing off, as
	// natsmesh agent does by default. Each pair runs side by side, its
	// loads interleaved, and the report gives the difference per call
	// (the report's Telemetry).
	SidecarHTTPNoTel = "sidecar-http-notel"
	InprocHTTPNoTel  = "inproc-http-notel"
	// The sidecar and in-process HTTP scenarios again, their POSTs to a
	// route the mesh file marks idempotent (IdempotentPolicy): calls that
	// may run twice, so not confirmed before they start (docs/wire.md,
	// "Liveness"): two NATS messages a call where the plain ones make
	// four. Each runs beside its plain scenario and the -notel one, loads
	// interleaved, so the difference is what at most once costs.
	SidecarHTTPIdempotent = "sidecar-http-idempotent"
	InprocHTTPIdempotent  = "inproc-http-idempotent"
	// The streaming scenarios, each through the sidecar pair beside its
	// direct twin (their loads interleaved): a gRPC server stream of
	// Options.StreamMessages messages of Options.Size bytes (1 KiB), and a
	// download and an upload of Options.Transfer bytes (64 MiB), one call
	// being one whole stream. Closed loops only: the gRPC streams at each
	// of Options.Conns, the transfers one at a time, so each agent's peak
	// RSS is what one stream costs it.
	DirectGRPCStream  = "direct-grpc-stream"
	SidecarGRPCStream = "sidecar-grpc-stream"
	DirectDownload    = "direct-http-download"
	SidecarDownload   = "sidecar-http-download"
	DirectUpload      = "direct-http-upload"
	SidecarUpload     = "sidecar-http-upload"
)

// groups are the scenarios measured side by side: a group's members are
// started together and each load runs on one, then at once on the next,
// so they see the same machine (the same noise) and their differences are
// the costs of what tells them apart. Whichever member comes first in
// Options.Scenarios starts its group, with the other members it names.
var groups = [][]string{
	{SidecarHTTP, SidecarHTTPNoTel, SidecarHTTPIdempotent},
	{InprocHTTP, InprocHTTPNoTel, InprocHTTPIdempotent},
	{DirectGRPCStream, SidecarGRPCStream},
	{DirectDownload, SidecarDownload},
	{DirectUpload, SidecarUpload},
	{ScaleRouteSame, ScaleRouteHop},
}

// partners are the other members of scenario's group, in the group's order.
func partners(scenario string) []string {
	for _, g := range groups {
		if slices.Contains(g, scenario) {
			return slices.DeleteFunc(slices.Clone(g), func(n string) bool { return n == scenario })
		}
	}
	return nil
}

// BenchPolicy is the mesh file of the +policy scenarios: a route with a
// timeout, retries with their budget, a circuit breaker and a bulkhead, an
// allow list the client passes, and a rate limit it stays under.
const BenchPolicy = `version: 1
services:
  client: {}
  echo:
    allow:
      - caller: client
    inbound:
      rate_limit: {per_caller: 1000000, per: 1s, burst: 100000}
    policy:
      timeout: 2s
      attempt_timeout: 1s
      retries: {attempts: 3, backoff: 10ms, max_backoff: 100ms, budget: 20%, min_per_second: 10}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 20, open_for: 5s}
      bulkhead: {max_concurrent: 1000}
    routes:
      - name: echo
        match: {path_prefix: /echo, methods: [POST]}
        policy: {timeout: 1s}
`

// IdempotentPolicy is the mesh file of the -idempotent scenarios: the
// built-in policy, and the bench's route marked idempotent.
const IdempotentPolicy = `version: 1
services:
  client: {}
  echo:
    routes:
      - name: echo
        match: {path_prefix: /echo}
        policy: {idempotent: true}
`

// Scenarios lists every scenario, in the order Run runs them.
var Scenarios = []string{DirectHTTP, DirectGRPC, SidecarHTTP, SidecarHTTPNoTel, SidecarHTTPIdempotent, SidecarHTTPPolicy, SidecarGRPC,
	InprocHTTP, InprocHTTPNoTel, InprocHTTPIdempotent, InprocHTTPPolicy, InprocGRPC, EmbeddedHTTP, EmbeddedGRPC, NginxPair,
	DirectGRPCStream, SidecarGRPCStream, DirectDownload, SidecarDownload, DirectUpload, SidecarUpload}

// ErrConfig is wrapped by the errors about invalid Options.
var ErrConfig = errors.New("benchrun: invalid options")

// Options configure a run.
type Options struct {
	// Exe is the natsmesh binary that components are started from. Required.
	Exe string
	// Duration is how long each load runs. Zero means 5s.
	Duration time.Duration
	// Rate is the open loop's calls per second. Zero means 1000; negative
	// skips the open loop.
	Rate float64
	// Conns are the closed loops' concurrent connections (callers). Nil
	// means 1 and 32.
	Conns []int
	// Size is the request and response body size, and the size of each
	// message of a gRPC stream. Zero means 1024.
	Size int
	// Transfer is the body size of each download and upload of the
	// streaming scenarios. Zero means 64 MiB.
	Transfer int64
	// StreamMessages is how many messages each gRPC stream of the
	// streaming scenarios carries. Zero means 1000.
	StreamMessages int
	// Scenarios are the scenarios to run; nil means all of Scenarios (or,
	// with Scaling, none of them).
	Scenarios []string
	// Scaling adds the scaling scenarios (ScalingScenarios) to the run.
	Scaling bool
	// Nginx is the nginx binary; empty: looked up in PATH and /usr/sbin.
	// When none is found the nginx scenario is skipped with a note.
	Nginx string
	// BrokerProcs runs every broker process on that many cores
	// (natsmesh broker --procs); zero: its default, every core.
	BrokerProcs int
	// Progress receives a line as each load ends. Nil discards.
	Progress io.Writer
	// Revision names the source revision in the report when the binary's
	// build information has none.
	Revision string
	// Profile, when set, is a directory where each measured load leaves
	// the CPU and allocation profiles of every process that serves them
	// (the agents; the brokers, through nats-server's profiling port) and
	// of the bench process itself (see profile).
	Profile string
}

func (o *Options) defaults() error {
	if o.Exe == "" {
		return fmt.Errorf("%w: no natsmesh binary", ErrConfig)
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Duration < 0 {
		return fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if o.BrokerProcs < 0 {
		return fmt.Errorf("%w: broker cores %d: want 0 or more", ErrConfig, o.BrokerProcs)
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.Conns == nil {
		o.Conns = []int{1, 32}
	}
	for _, c := range o.Conns {
		if c < 1 || c > 4096 {
			return fmt.Errorf("%w: connections %d: want 1 to 4096", ErrConfig, c)
		}
	}
	if o.Size == 0 {
		o.Size = 1024
	}
	if o.Size < 0 || o.Size > 512<<10 {
		return fmt.Errorf("%w: size %d: want 0 to 512 KiB", ErrConfig, o.Size)
	}
	if o.Transfer == 0 {
		o.Transfer = 64 << 20
	}
	if o.Transfer < 0 {
		return fmt.Errorf("%w: transfer %d: want a positive size", ErrConfig, o.Transfer)
	}
	if o.StreamMessages == 0 {
		o.StreamMessages = 1000
	}
	if o.StreamMessages < 0 {
		return fmt.Errorf("%w: stream messages %d: want a positive count", ErrConfig, o.StreamMessages)
	}
	if o.Scenarios == nil && !o.Scaling {
		o.Scenarios = Scenarios
	}
	if o.Scaling {
		o.Scenarios = append(slices.Clip(o.Scenarios), ScalingScenarios...)
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) && !slices.Contains(ScalingScenarios, s) {
			return fmt.Errorf("%w: unknown scenario %q (have %s; with --scaling %s)", ErrConfig, s,
				strings.Join(Scenarios, ", "), strings.Join(ScalingScenarios, ", "))
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// FindNginx returns the nginx binary in PATH or /usr/sbin, or "".
func FindNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// load is one load to run against a scenario.
type load struct {
	name  string
	conns int     // closed loop callers, or the open loop's workers
	rate  float64 // >0: open loop
}

// loads are the loads of scenario, in order.
func (o *Options) loads(scenario string) []load {
	if _, _, ok := scaling(scenario); ok {
		return scaleLoads(scenario)
	}
	if _, ok := streaming(scenario); ok {
		// A stream's throughput, not its calls' rate, is the measure:
		// no open loop.
		if scenario == DirectGRPCStream || scenario == SidecarGRPCStream {
			return o.closedLoads()
		}
		return []load{{name: "closed 1", conns: 1}}
	}
	var ls []load
	// The open loop at a moderate rate first: the agents' peak RSS under it
	// is then not inflated by a heavier load before (clear_refs resets the
	// peak where the kernel allows, this ordering covers where it does not).
	if o.Rate > 0 {
		ls = append(ls, load{name: "open " + strconv.FormatFloat(o.Rate, 'f', -1, 64) + "/s", conns: 64, rate: o.Rate})
	}
	return append(ls, o.closedLoads()...)
}

func (o *Options) closedLoads() []load {
	var ls []load
	for _, c := range o.Conns {
		ls = append(ls, load{name: "closed " + strconv.Itoa(c), conns: c})
	}
	return ls
}

// setup is a scenario ready to measure.
type setup struct {
	name       string
	components []*benchproc.Proc
	// target returns the call to make with a client sized for conns
	// concurrent callers, and a function that releases that client.
	target  func(conns int) (loadgen.Target, func(), error)
	cleanup []func()
	// noEcho: the shared echo process plays no part (in process, the echo
	// is served by a process of the scenario's own).
	noEcho bool
	// bytes and msgs are the payload bytes and messages one call of a
	// streaming scenario moves; zero for the others.
	bytes int64
	msgs  int
	// scale is what a scaling scenario scales; monitor the monitor
	// address of the broker its calling agent uses.
	scale   *benchreport.Scale
	monitor string
}

func (s *setup) close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	for i := len(s.components) - 1; i >= 0; i-- {
		s.components[i].Stop(5 * time.Second)
	}
}

// env is what scenarios share: the echo process, the options, a temp dir.
type env struct {
	opts     *Options
	dir      string
	echoHTTP string
	echoGRPC string
	body     []byte
	// rssLifetime: the kernel refused to reset a peak RSS, so some peaks
	// are the process's lifetime peak rather than the load's.
	rssLifetime bool
}

// Run runs the scenarios of opts, one after another, each under every load,
// and returns the report. A scenario that cannot run (nginx missing) is
// reported as skipped; one that fails to start fails the run.
func Run(ctx context.Context, opts Options) (*benchreport.Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "natsmesh-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := newReport(&opts)
	e := &env{opts: &opts, dir: dir, body: bytes.Repeat([]byte("natsmesh"), opts.Size/8+1)[:opts.Size]}
	if e.echoHTTP, err = benchproc.FreeAddr(); err != nil {
		return nil, err
	}
	if e.echoGRPC, err = benchproc.FreeAddr(); err != nil {
		return nil, err
	}
	echo, err := benchproc.Start(dir, "echo", opts.Exe, "bench-echo", "--echo-http", e.echoHTTP, "--echo-grpc", e.echoGRPC)
	if err != nil {
		return nil, err
	}
	defer echo.Stop(5 * time.Second)
	if err := echo.WaitReady(ctx, 10*time.Second, benchproc.LogReady(echo, "ready")); err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, name := range opts.Scenarios {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if done[name] {
			continue // measured beside its group
		}
		group := []string{name}
		for _, p := range partners(name) {
			if slices.Contains(opts.Scenarios, p) {
				group = append(group, p)
			}
		}
		var setups []*setup
		var err error
		for _, n := range group {
			done[n] = true
			s, skip, serr := e.start(ctx, n)
			if serr != nil {
				err = serr
				break
			}
			if skip != "" {
				rep.Skipped = append(rep.Skipped, benchreport.Skip{Scenario: n, Reason: skip})
				fmt.Fprintf(opts.Progress, "%-13s skipped: %s\n", n, skip)
				continue
			}
			s.name = n
			setups = append(setups, s)
		}
		if err == nil && len(setups) > 0 {
			err = e.measure(ctx, rep, setups, echo)
		}
		for _, s := range setups {
			s.close()
		}
		if err != nil {
			return rep, err
		}
	}
	sortRows(rep, opts.Scenarios)
	if e.rssLifetime {
		rep.Notes = append(rep.Notes, "peak RSS: the kernel refused to reset VmHWM (clear_refs), so peaks are since each process started")
	}
	evaluate(rep)
	return rep, nil
}

// measure warms each setup up, then runs every load against each: all of
// a load's setups one after the other before the next load, so setups
// measured together (a group) see the same moment of the machine.
func (e *env) measure(ctx context.Context, rep *benchreport.Report, setups []*setup, echo *benchproc.Proc) error {
	comps := make([][]*benchproc.Proc, len(setups))
	for i, s := range setups {
		// Warm up: connections, goroutines, buffers and the JIT-less but
		// cache-sensitive paths, so the first load does not pay for them.
		comps[i] = s.components
		if !s.noEcho {
			comps[i] = append([]*benchproc.Proc{echo}, comps[i]...)
		}
		if err := firstCall(ctx, s); err != nil {
			return fmt.Errorf("benchrun: %s: no first call: %w", s.name, err)
		}
		warm := load{name: "warm-up", conns: 4}
		if s.bytes > 0 && s.msgs == 0 {
			warm.conns = 1 // a transfer at a time, as measured
		}
		if err := e.runLoad(ctx, s, comps[i], warm, min(e.opts.Duration/5, time.Second), nil); err != nil {
			return fmt.Errorf("benchrun: %s: warm-up: %w", s.name, err)
		}
	}
	// A group's members have the same loads.
	for _, l := range e.opts.loads(setups[0].name) {
		for i, s := range setups {
			row := benchreport.Row{Scenario: s.name, Load: l.name, Conns: l.conns, Rate: l.rate}
			if s.scale != nil {
				sc := *s.scale
				var err error
				if sc.BrokerSubs, sc.BrokerRSSMB, err = brokerState(s.monitor); err != nil {
					return fmt.Errorf("benchrun: %s: the broker's state: %w", s.name, err)
				}
				if sc.Dimension == "conns" {
					sc.Value = strconv.Itoa(l.conns)
				}
				row.Scale = &sc
			}
			if err := e.runLoad(ctx, s, comps[i], l, e.opts.Duration, func(res *loadgen.Result, acc accounting) {
				fill(&row, res, acc, comps[i])
				if s.bytes > 0 {
					row.MBPerSec = row.ReqPerSec * float64(s.bytes) / 1e6
					row.MsgPerSec = row.ReqPerSec * float64(s.msgs)
				}
			}); err != nil {
				return fmt.Errorf("benchrun: %s, %s: %w", s.name, l.name, err)
			}
			if err := ctx.Err(); err != nil {
				// A load cut short by an interrupt measured less than it says.
				return fmt.Errorf("benchrun: %s, %s: interrupted: %w", s.name, l.name, err)
			}
			rep.Rows = append(rep.Rows, row)
			fmt.Fprintf(e.opts.Progress, "%-19s %-12s %9.0f req/s  p50 %-9s p99 %-9s errors %d\n",
				s.name, l.name, row.ReqPerSec, benchreport.FormatLatency(row.P50), benchreport.FormatLatency(row.P99), row.Errors)
		}
	}
	return nil
}

// firstCall makes calls through s, one at a time, until one succeeds (15 s
// at most), before the warm-up. A first call can take longer than a short
// warm-up (which then fails, having had no call succeed): a path not all
// there yet (the echo's interest on its way over a route to the caller's
// broker) answers it only after the caller's resend (the take bound, 300
// ms); a whole transfer on a busy machine takes longer than 40 ms.
func firstCall(ctx context.Context, s *setup) error {
	call, release, err := s.target(1)
	if err != nil {
		return err
	}
	defer release()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = call(cctx)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accounting is the process accounting taken around one load.
type accounting struct {
	used map[int]counters // by pid, during the load
	rss  map[int]int64    // peak RSS by pid
	self counters
	// mallocs are the bench process's heap allocations during the load.
	mallocs uint64
	// procMallocs are the heap allocations of the components that report
	// theirs (the agents, through their admin port), by pid.
	procMallocs map[int]uint64
	resetRSS    bool
}

// counters are what the kernel counts for a process: CPU time, context
// switches, read and write system calls.
type counters struct {
	cpu        time.Duration
	ctxSwitch  int64
	rwSyscalls int64
}

// count reads the counters of process pid ("self": this one).
func count(pid string) (counters, error) {
	cpu, err := benchproc.CPUTime(pid)
	if err != nil {
		return counters{}, err
	}
	// Both exist wherever /proc/<pid>/stat does; a read that fails counts
	// nothing rather than fail the load.
	cs, _ := benchproc.ContextSwitches(pid)
	rw, _ := benchproc.RWSyscalls(pid)
	return counters{cpu: cpu, ctxSwitch: cs, rwSyscalls: rw}, nil
}

func (c counters) sub(before counters) counters {
	return counters{cpu: c.cpu - before.cpu, ctxSwitch: c.ctxSwitch - before.ctxSwitch, rwSyscalls: c.rwSyscalls - before.rwSyscalls}
}

func (e *env) runLoad(ctx context.Context, s *setup, procs []*benchproc.Proc, l load, d time.Duration, report func(*loadgen.Result, accounting)) error {
	target, release, err := s.target(l.conns)
	if err != nil {
		return err
	}
	defer release()
	acc := accounting{used: map[int]counters{}, rss: map[int]int64{}, procMallocs: map[int]uint64{}, resetRSS: true}
	before := map[int]counters{}
	mallocsBefore := map[int]uint64{}
	for _, p := range procs {
		if n, ok := p.Mallocs(); ok {
			mallocsBefore[p.PID()] = n
		}
		pid := strconv.Itoa(p.PID())
		acc.resetRSS = benchproc.ResetPeakRSS(pid) && acc.resetRSS
		before[p.PID()], _ = count(pid)
	}
	var stopProfiles func() error
	if e.opts.Profile != "" && report != nil {
		stopProfiles = e.profile(ctx, s.name, l.name, procs, d)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	selfBefore, _ := count("self")

	var res *loadgen.Result
	if l.rate > 0 {
		res, err = loadgen.Open(ctx, loadgen.OpenConfig{Rate: l.rate, Duration: d, Workers: l.conns, Drain: 5 * time.Second}, target)
	} else {
		res, err = loadgen.Closed(ctx, loadgen.ClosedConfig{Workers: l.conns, Duration: d}, target)
	}
	selfAfter, _ := count("self")
	runtime.ReadMemStats(&ms)
	if stopProfiles != nil {
		if perr := stopProfiles(); perr != nil {
			fmt.Fprintf(e.opts.Progress, "%s, %s: profiles: %v\n", s.name, l.name, perr)
		}
	}
	if err != nil {
		return err
	}
	acc.mallocs = ms.Mallocs - mallocs
	acc.self = selfAfter.sub(selfBefore)
	for _, p := range procs {
		pid := strconv.Itoa(p.PID())
		after, err := count(pid)
		if err != nil {
			// Its figures would be a negative CPU time and no RSS: a
			// component that died under load fails the scenario instead.
			return fmt.Errorf("%s stopped during the load: %w", p.Name, err)
		}
		acc.used[p.PID()] = after.sub(before[p.PID()])
		if acc.rss[p.PID()], err = benchproc.PeakRSS(pid); err != nil {
			return fmt.Errorf("%s stopped during the load: %w", p.Name, err)
		}
	}
	// After the CPU times: reading the counts costs the process a little.
	for _, p := range procs {
		if n0, ok := mallocsBefore[p.PID()]; ok {
			if n, ok := p.Mallocs(); ok && n >= n0 {
				acc.procMallocs[p.PID()] = n - n0
			}
		}
	}
	if res.Calls == 0 && report == nil {
		// A warm-up that got no call through: the path does not work.
		// A measured load without one is a measurement (its row: no
		// throughput, its errors and the first one), and the run goes on.
		return fmt.Errorf("no call succeeded: %v", res.FirstError)
	}
	if !acc.resetRSS {
		e.rssLifetime = true
	}
	if report != nil {
		report(res, acc)
	}
	return nil
}

// start starts scenario name; skip is why it cannot run, if it cannot.
func (e *env) start(ctx context.Context, name string) (_ *setup, skip string, err error) {
	// The error returns below set the named result to nil, so the cleanup
	// holds its own reference.
	s := &setup{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	switch name {
	case DirectHTTP:
		s.target = e.httpTarget("http://"+e.echoHTTP+"/echo", nil)
	case DirectGRPC:
		s.target = e.grpcTarget(e.echoGRPC, "")
	case DirectGRPCStream:
		s.target = e.grpcStreamTarget(e.echoGRPC, "")
		s.bytes, s.msgs = int64(e.opts.StreamMessages)*int64(e.opts.Size), e.opts.StreamMessages
	case DirectDownload, DirectUpload:
		s.target = e.bulkTarget("http://"+e.echoHTTP, nil, name == DirectUpload)
		s.bytes = e.opts.Transfer
	case SidecarHTTP, SidecarGRPC, SidecarHTTPPolicy, SidecarHTTPNoTel, SidecarHTTPIdempotent, SidecarGRPCStream, SidecarDownload, SidecarUpload:
		natsURL, err := e.startBroker(ctx, s)
		if err != nil {
			return nil, "", err
		}
		if err := e.startSidecars(ctx, s, name, natsURL, natsURL); err != nil {
			return nil, "", err
		}
	case InprocHTTP, InprocGRPC, InprocHTTPPolicy, InprocHTTPNoTel, InprocHTTPIdempotent:
		s.noEcho = true
		natsURL, err := e.startBroker(ctx, s)
		if err != nil {
			return nil, "", err
		}
		if err := e.startInproc(ctx, s, name, natsURL); err != nil {
			return nil, "", err
		}
	case EmbeddedHTTP, EmbeddedGRPC:
		s.noEcho = true
		client, err := e.startEmbedded(s)
		if err != nil {
			return nil, "", err
		}
		if s.target, err = e.agentTarget(client, name == EmbeddedGRPC); err != nil {
			return nil, "", err
		}
	case NginxPair:
		bin := e.opts.Nginx
		if bin == "" {
			bin = FindNginx()
		}
		if bin == "" {
			return nil, "nginx not found in PATH or /usr/sbin (make bench-deps installs it)", nil
		}
		front, err := e.startNginxPair(ctx, s, bin)
		if err != nil {
			return nil, "", err
		}
		s.target = e.httpTarget("http://"+front+"/echo", nil)
	default:
		if err := e.startScaling(ctx, s, name); err != nil {
			return nil, "", err
		}
	}
	return s, "", nil
}

// startInproc starts the in-process scenario name on the broker at
// natsURL: the echo app (bench-echo, its in-process agent serving echo)
// and, in this process, the client agent the calls go through; and sets
// the setup's target.
func (e *env) startInproc(ctx context.Context, s *setup, name, natsURL string) error {
	// Metrics on both agents, as the sidecar's, except without
	// telemetry.
	telemetryOn := name != InprocHTTPNoTel
	args := []string{"bench-echo", "--nats", natsURL, "--service", "echo", "--telemetry", onOff(telemetryOn)}
	file, err := e.policyFile(name)
	if err != nil {
		return err
	}
	if file != "" {
		args = append(args, "--policy", file)
	}
	app, err := benchproc.Start(e.dir, "echo-app", e.opts.Exe, args...)
	if err != nil {
		return err
	}
	s.components = append(s.components, app)
	if err := app.WaitReady(ctx, 15*time.Second, benchproc.LogReady(app, "ready")); err != nil {
		return err
	}
	// As a library user connects (the README's in-process example).
	nc, err := agent.Connect(ctx, "client", agent.ConnectConfig{URL: natsURL, Name: "natsmesh-bench:client", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	s.cleanup = append(s.cleanup, nc.Close)
	cfg := agent.Config{Service: "client", Logger: slog.New(slog.DiscardHandler)}
	if telemetryOn {
		tel, err := telemetry.New(telemetry.Config{Service: "client"})
		if err != nil {
			return err
		}
		s.cleanup = append(s.cleanup, func() { tel.Shutdown(context.Background()) })
		cfg.Telemetry = tel
	}
	if file != "" {
		src, err := live.WatchFile(ctx, file, live.SourceConfig{})
		if err != nil {
			return err
		}
		s.cleanup = append(s.cleanup, func() { src.Close() })
		cfg.Policies = src
	}
	a, err := agent.New(nc, cfg)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	s.cleanup = append(s.cleanup, func() { a.Shutdown(context.Background()) })
	s.target, err = e.agentTarget(a, name == InprocGRPC)
	return err
}

// startSidecars starts the sidecar pair of scenario name: agent-echo
// before the echo service, connected to echoNATS, and agent-client, its
// HTTP and gRPC proxies the calls' way in, connected to clientNATS; and
// sets the setup's target.
func (e *env) startSidecars(ctx context.Context, s *setup, name, echoNATS, clientNATS string) error {
	upstream := "http://" + e.echoHTTP
	overGRPC := name == SidecarGRPC || name == SidecarGRPCStream
	if overGRPC {
		upstream = "h2c://" + e.echoGRPC
	}
	// Without --policy the agents would watch the (empty) policies
	// bucket; "off" makes them apply the built-in policy alone.
	policy := []string{"--policy", "off"}
	file, err := e.policyFile(name)
	if err != nil {
		return err
	}
	if file != "" {
		policy = []string{"--policy", file}
	}
	if name == SidecarHTTPNoTel {
		policy = append(policy, "--telemetry", "off")
	}
	if err := e.startAgent(ctx, s, "agent-echo", echoNATS, append([]string{"--service", "echo", "--upstream", upstream, "--proxy", "off", "--grpc-proxy", "off"}, policy...)...); err != nil {
		return err
	}
	httpAddr, err := benchproc.FreeAddr()
	if err != nil {
		return err
	}
	grpcAddr, err := benchproc.FreeAddr()
	if err != nil {
		return err
	}
	if err := e.startAgent(ctx, s, "agent-client", clientNATS, append([]string{"--service", "client", "--proxy", httpAddr, "--grpc-proxy", grpcAddr}, policy...)...); err != nil {
		return err
	}
	proxy := http.ProxyURL(&url.URL{Scheme: "http", Host: httpAddr})
	switch name {
	case SidecarGRPC:
		s.target = e.grpcTarget(grpcAddr, "echo")
	case SidecarGRPCStream:
		s.target = e.grpcStreamTarget(grpcAddr, "echo")
		s.bytes, s.msgs = int64(e.opts.StreamMessages)*int64(e.opts.Size), e.opts.StreamMessages
	case SidecarDownload, SidecarUpload:
		s.target = e.bulkTarget("http://echo", proxy, name == SidecarUpload)
		s.bytes = e.opts.Transfer
	default:
		s.target = e.httpTarget("http://echo/echo", proxy)
	}
	return nil
}

// startEmbedded runs a broker, an echo service agent and a client agent in
// this process, connected in process, and returns the client agent.
func (e *env) startEmbedded(s *setup) (*agent.Agent, error) {
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:-1", HTTP: broker.HTTPOff, NoJetStream: true})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, func() { b.Shutdown(context.Background()) })
	if err := b.Ready(10 * time.Second); err != nil {
		return nil, err
	}
	start := func(service string, setup func(*agent.Agent) error) (*agent.Agent, error) {
		nc, err := b.InProcessConn(nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		if err != nil {
			return nil, err
		}
		s.cleanup = append(s.cleanup, nc.Close)
		a, err := agent.New(nc, agent.Config{Service: service, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, err
		}
		if setup != nil {
			if err := setup(a); err != nil {
				return nil, err
			}
		}
		if err := a.Start(context.Background()); err != nil {
			return nil, err
		}
		s.cleanup = append(s.cleanup, func() { a.Shutdown(context.Background()) })
		return a, a.Ready(10 * time.Second)
	}
	if _, err := start("echo", func(a *agent.Agent) error {
		testpb.RegisterTestServiceServer(a.GRPCServer(), benchecho.GRPC{})
		return a.Handle(benchecho.Handler())
	}); err != nil {
		return nil, err
	}
	return start("client", nil)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// policyFile writes the mesh file of scenario into the run's directory
// and returns its path: BenchPolicy for the +policy scenarios,
// IdempotentPolicy for the -idempotent ones, none ("") for the others.
func (e *env) policyFile(scenario string) (string, error) {
	var text string
	switch scenario {
	case SidecarHTTPPolicy, InprocHTTPPolicy:
		text = BenchPolicy
	case SidecarHTTPIdempotent, InprocHTTPIdempotent:
		text = IdempotentPolicy
	default:
		return "", nil
	}
	path := filepath.Join(e.dir, scenario+".yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("benchrun: %w", err)
	}
	return path, nil
}

func (e *env) startBroker(ctx context.Context, s *setup) (string, error) {
	// The store in the run's directory, removed with it: natsmesh broker
	// otherwise keeps one per port in the user's data directory.
	return e.startBrokerAs(ctx, s, "broker", "--monitor", "off", "--store", filepath.Join(e.dir, "broker-store"))
}

// startBrokerAs starts a natsmesh broker process called name with the
// flags args, and returns its client URL.
func (e *env) startBrokerAs(ctx context.Context, s *setup, name string, args ...string) (string, error) {
	addr, err := benchproc.FreeAddr()
	if err != nil {
		return "", err
	}
	prof, pprofAddr, err := e.profPort(name)
	if err != nil {
		return "", err
	}
	if e.opts.BrokerProcs > 0 {
		prof = append(prof, "--procs", strconv.Itoa(e.opts.BrokerProcs))
	}
	p, err := benchproc.Start(e.dir, name, e.opts.Exe, append(append([]string{"broker", "--listen", addr, "--log-level", "warn"}, prof...), args...)...)
	if err != nil {
		return "", err
	}
	p.Pprof = pprofAddr
	s.components = append(s.components, p)
	if err := p.WaitReady(ctx, 15*time.Second, benchproc.TCPReady(addr)); err != nil {
		return "", err
	}
	return "nats://" + addr, nil
}

func (e *env) startAgent(ctx context.Context, s *setup, name, natsURL string, args ...string) error {
	admin, err := benchproc.FreeAddr()
	if err != nil {
		return err
	}
	args = append([]string{"agent", "--nats", natsURL, "--admin", admin, "--pprof", "--log-level", "warn"}, args...)
	p, err := benchproc.Start(e.dir, name, e.opts.Exe, args...)
	if err != nil {
		return err
	}
	p.Admin, p.Pprof = admin, admin
	s.components = append(s.components, p)
	return p.WaitReady(ctx, 15*time.Second, benchproc.HTTPReady("http://"+admin+"/readyz"))
}

// agentTarget calls the echo service through a's client side, over gRPC or
// HTTP; the agent's own pool serves every load, so there is nothing to release.
func (e *env) agentTarget(a *agent.Agent, overGRPC bool) (func(int) (loadgen.Target, func(), error), error) {
	var call loadgen.Target
	if overGRPC {
		cc, err := a.ClientConn("echo")
		if err != nil {
			return nil, err
		}
		call = e.grpcCall(testpb.NewTestServiceClient(cc))
	} else {
		call = e.httpCall(&http.Client{Transport: a.Transport()}, "http://echo/echo")
	}
	return func(int) (loadgen.Target, func(), error) { return call, func() {}, nil }, nil
}

// httpTarget makes POST url calls through a client pooled for the load's
// callers, through proxy when set.
func (e *env) httpTarget(url string, proxy func(*http.Request) (*url.URL, error)) func(int) (loadgen.Target, func(), error) {
	return func(conns int) (loadgen.Target, func(), error) {
		tr := &http.Transport{
			Proxy:               proxy,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}
		return e.httpCall(&http.Client{Transport: tr}, url), tr.CloseIdleConnections, nil
	}
}

func (e *env) httpCall(client *http.Client, url string) loadgen.Target {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(e.body))
		if err != nil {
			return err
		}
		req.Header["Content-Type"] = []string{"application/octet-stream"}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s (%s)", resp.Status, resp.Header.Get(wire.HeaderError))
		}
		if err != nil {
			return err
		}
		if n != int64(len(e.body)) {
			return fmt.Errorf("echo of %d bytes came back with %d", len(e.body), n)
		}
		return nil
	}
}

// grpcTarget calls TestService.UnaryCall at addr, with authority when set;
// one HTTP/2 connection carries every caller, as gRPC clients do.
func (e *env) grpcTarget(addr, authority string) func(int) (loadgen.Target, func(), error) {
	return func(int) (loadgen.Target, func(), error) {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if authority != "" {
			opts = append(opts, grpc.WithAuthority(authority))
		}
		cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
		if err != nil {
			return nil, nil, err
		}
		return e.grpcCall(testpb.NewTestServiceClient(cc)), func() { cc.Close() }, nil
	}
}

func (e *env) grpcCall(c testpb.TestServiceClient) loadgen.Target {
	return func(ctx context.Context) error {
		resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: int32(len(e.body)), Payload: &testpb.Payload{Body: e.body}})
		if err != nil {
			return err
		}
		if n := len(resp.GetPayload().GetBody()); n != len(e.body) {
			return fmt.Errorf("echo of %d bytes came back with %d", len(e.body), n)
		}
		return nil
	}
}
