package streamtest

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
)

// The fault suite's harness (issue 21): services that keep a ledger,
// a load whose every request carries an ID and a deadline, and the
// checks every case makes of both. The cases are in chaos_cases_test.go,
// netns_test.go and soak_test.go.

// chaosEnv and soakEnv turn on the long cases: `make chaos` and `make
// soak` set them; `make test` runs only the fast ones.
const (
	chaosEnv = "NATSMESH_CHAOS"
	soakEnv  = "NATSMESH_SOAK"
)

// needEnv skips t unless env is 1.
func needEnv(t *testing.T, env, target string) {
	t.Helper()
	if os.Getenv(env) != "1" {
		t.Skipf("a long fault case: %s=1 runs it (make %s)", env, target)
	}
}

// The ledger service is this test binary re-executed (TestMain), so that
// a case can kill or freeze a service process as it can an agent's. It
// serves HTTP at the address in ledgerServiceEnv and, before any work,
// appends a line to the file in ledgerFileEnv for every request: its ID
// (X-Request-Id), method, the time it started here and its client's
// deadline (X-Deadline, Unix ms). A line written survives the process's
// SIGKILL (it is in the kernel's page cache). Each request then works
// ledgerWorkEnv (a duration, default 20ms) holding one of
// ledgerCapacityEnv slots (0, the default: no bound), and answers 200
// "ok".
const (
	ledgerServiceEnv  = "NATSMESH_LEDGER_SERVICE"
	ledgerFileEnv     = "NATSMESH_LEDGER_FILE"
	ledgerWorkEnv     = "NATSMESH_LEDGER_WORK"
	ledgerCapacityEnv = "NATSMESH_LEDGER_CAPACITY"
)

// serveLedger is the ledger service's main; its exit code.
func serveLedger(addr string) int {
	f, err := os.OpenFile(os.Getenv(ledgerFileEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	work := 20 * time.Millisecond
	if v := os.Getenv(ledgerWorkEnv); v != "" {
		if work, err = time.ParseDuration(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	var slots chan struct{}
	if n, _ := strconv.Atoi(os.Getenv(ledgerCapacityEnv)); n > 0 {
		slots = make(chan struct{}, n)
	}
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := fmt.Sprintf("%s %s %d %s\n", r.Header.Get("X-Request-Id"), r.Method, time.Now().UnixMicro(), r.Header.Get("X-Deadline"))
		mu.Lock()
		_, err := f.WriteString(line)
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			case <-r.Context().Done():
				return
			}
		}
		select {
		case <-time.After(work):
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("ok"))
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = http.Serve(l, h)
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// ledgerService is one instance of the ledger service.
type ledgerService struct {
	*proc
	url, file string
}

// ledgerOpts configures a ledger service.
type ledgerOpts struct {
	work     time.Duration // zero: 20ms
	capacity int           // zero: no bound
	// netns runs it in that network namespace (netns_test.go).
	netns string
	// addr is where it listens; empty: a free loopback port.
	addr string
}

// startLedgerService starts a ledger service writing to a file of its
// own in dir, and waits until it accepts connections.
func startLedgerService(t *testing.T, name, dir string, o ledgerOpts) *ledgerService {
	t.Helper()
	if o.addr == "" {
		o.addr = freeAddr(t)
	}
	s := &ledgerService{url: "http://" + o.addr, file: filepath.Join(dir, name+".ledger")}
	env := []string{ledgerServiceEnv + "=" + o.addr, ledgerFileEnv + "=" + s.file}
	if o.work != 0 {
		env = append(env, ledgerWorkEnv+"="+o.work.String())
	}
	if o.capacity != 0 {
		env = append(env, ledgerCapacityEnv+"="+strconv.Itoa(o.capacity))
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s.proc = startCmd(t, name, env, netnsCommand(o.netns, self, "-test.run=^$"))
	dial := dialIn(o.netns)
	s.waitUntil(t, func() error {
		c, err := dial(context.Background(), "tcp", o.addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return s
}

// netnsCommand is the command that runs path with args, in the network
// namespace ns if not empty (`ip netns exec` execs it: the process's
// PID is the program's, so signals reach it).
func netnsCommand(ns, path string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(path, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, path}, args...)...)
}

// execution is one line of a ledger: a request that started at a
// service instance.
type execution struct {
	instance string
	method   string
	at       time.Time
	deadline time.Time
}

func (e execution) String() string {
	return e.instance + " at " + e.at.Format("15:04:05.000")
}

// readLedgers reads every service's ledger: the executions of each
// request ID.
func readLedgers(t reporter, svcs ...*ledgerService) map[string][]execution {
	t.Helper()
	runs := map[string][]execution{}
	for _, s := range svcs {
		f, err := os.Open(s.file)
		if errors.Is(err, os.ErrNotExist) {
			continue // it never ran a request
		}
		if err != nil {
			t.Fatalf("%v", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 4 {
				// A SIGKILL cannot cut a line (one write); anything
				// else is a bug of the suite.
				f.Close()
				t.Fatalf("%s: bad ledger line %q", s.file, sc.Text())
			}
			at, _ := strconv.ParseInt(fields[2], 10, 64)
			dl, _ := strconv.ParseInt(fields[3], 10, 64)
			runs[fields[0]] = append(runs[fields[0]], execution{s.name, fields[1], time.UnixMicro(at), time.UnixMilli(dl)})
		}
		f.Close()
	}
	return runs
}

// load is a fixed rate of requests, half POSTs (not idempotent: never
// retried by the mesh, never to run twice) and half GETs.
type load struct {
	// rate is requests per second, for span.
	rate int
	span time.Duration
	// meshTimeout is each request's Mesh-Timeout and its deadline from
	// when its client sent it (X-Deadline); zero: 3s.
	meshTimeout time.Duration
	// hang is how long past its deadline a client waits for an answer
	// before it takes the call for hung; zero: 10s.
	hang time.Duration
	// client sends the requests (to http://orders/...).
	client *http.Client
	// at runs each fault at its time from the load's start, in order.
	at []fault
}

// fault is something done to the mesh during a load.
type fault struct {
	after time.Duration
	what  func()
}

// outcome is what one request got.
type outcome struct {
	id, method string
	sent, done time.Time
	status     int
	meshError  string // the answer's Mesh-Error
	clientErr  error  // no answer: the client's own error
}

// kind names an outcome: "ok", "503 connection-lost", "client: ...".
func (o outcome) kind() string {
	switch {
	case o.clientErr != nil:
		var ne net.Error
		if errors.As(o.clientErr, &ne) && ne.Timeout() {
			return "client: no answer (hang)"
		}
		if errors.Is(o.clientErr, syscall.ECONNREFUSED) {
			return "client: connection refused"
		}
		return "client: connection failed"
	case o.status == http.StatusOK:
		return "ok"
	case o.meshError != "":
		return strconv.Itoa(o.status) + " " + o.meshError
	default:
		return strconv.Itoa(o.status) + " (no Mesh-Error)"
	}
}

// run sends the load, runs its faults, and returns every request's
// outcome and the time of the first fault (the load's start without
// one).
func (l load) run(t *testing.T, name string) ([]outcome, time.Time) {
	t.Helper()
	mt := cmp.Or(l.meshTimeout, 3*time.Second)
	hang := cmp.Or(l.hang, 10*time.Second)
	var (
		mu   sync.Mutex
		outs []outcome
		wg   sync.WaitGroup
	)
	start := time.Now()
	// The faults run in turn, each at its time, beside the load; one may
	// take seconds (a rolling restart waits for each broker).
	faultAt := make(chan time.Time, 1)
	go func() {
		first := start
		// Sent however the faults end: one that fails its test (a
		// broker that does not come back) ends this goroutine.
		defer func() { faultAt <- first }()
		for i, f := range l.at {
			time.Sleep(time.Until(start.Add(f.after)))
			if i == 0 {
				first = time.Now()
			}
			f.what()
		}
	}()
	total := int(l.span.Seconds() * float64(l.rate))
	for i := range total {
		due := start.Add(time.Duration(i) * time.Second / time.Duration(l.rate))
		time.Sleep(time.Until(due))
		method := http.MethodPost
		if i%2 == 1 {
			method = http.MethodGet
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outcome{id: name + "-" + strconv.Itoa(i), method: method, sent: time.Now()}
			ctx, cancel := context.WithTimeout(context.Background(), mt+hang)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, method, "http://orders/x", nil)
			req.Header.Set("X-Request-Id", o.id)
			req.Header.Set("Mesh-Timeout", mt.String())
			// The deadline as an absolute time too: a relative one alone
			// counts from when the caller's agent reads the request, late
			// when that agent was frozen (the caller agent SIGSTOP case).
			deadline := strconv.FormatInt(o.sent.Add(mt).UnixMilli(), 10)
			req.Header.Set("Mesh-Start-By", deadline)
			req.Header.Set("X-Deadline", deadline)
			resp, err := l.client.Do(req)
			if err != nil {
				o.clientErr = err
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				o.status, o.meshError = resp.StatusCode, resp.Header.Get("Mesh-Error")
			}
			o.done = time.Now()
			mu.Lock()
			outs = append(outs, o)
			mu.Unlock()
		}()
	}
	wg.Wait()
	at := <-faultAt
	if len(outs) != total {
		t.Errorf("%d requests, %d outcomes", total, len(outs))
	}
	return outs, at
}

// chaosIdle is the agents' stream idle timeout in the fault cases: how
// soon a caller hears that the instance running its call (it accepted
// it, and for a POST was confirmed) is gone, frozen or cut off. A call no
// live instance took is sent again instead (wire.DefaultTakeWithin).
const chaosIdle = time.Second

// liveness is the error-within bound of the cases whose fault leaves a
// call with an instance that is gone, frozen or cut off (issue 21:
// "within the liveness bound, not at the deadline"): the idle timeout,
// the keep-alive's tick past it, and room for a loaded machine.
const liveness = chaosIdle + chaosIdle/3 + 500*time.Millisecond

// verdict is what a case allows beyond the rules every case checks.
type verdict struct {
	// failedGETs is how many idempotent requests may fail (-1: any).
	failedGETs int
	// failedPOSTs is how many non-idempotent requests may fail (-1: any).
	failedPOSTs int
	// failedShare, if not zero, is the largest share of all requests
	// that may fail.
	failedShare float64
	// recoverBy, if not zero: every request sent this long after the
	// first fault or later is answered 200.
	recoverBy time.Duration
	// errorWithin, if not zero: a failed request is answered within
	// this of its send (the liveness bound), not at its deadline.
	errorWithin time.Duration
	// connErrors: a client may find no listener (the caller's agent is
	// what the case kills).
	connErrors bool
	// lateAtService, if not empty, says why a late start is the
	// service's own and not the mesh's: counted, not failed.
	lateAtService string
	// defects names, by rule (see judge.fail), a mesh defect that
	// breaks the rule today: its breaches do not fail the case, which
	// report then skips, naming the defect; every other rule still
	// fails it.
	defects map[string]string
}

// reporter is what check needs of a *testing.T (a test of check gives
// it a recorder).
type reporter interface {
	Helper()
	Error(args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// judge fails a case for each breach of a rule, unless the case names a
// defect that breaks that rule.
type judge struct {
	t       reporter
	defects map[string]string
	known   []string
	// breaches counts each rule's failed breaches: ten are told.
	breaches map[string]int
}

// fail reports a breach of rule: "hang", "explicit", "twice", "late",
// "recover", "error-within", "failed-get", "failed-post" or
// "failed-share".
func (j *judge) fail(rule, format string, args ...any) {
	j.t.Helper()
	msg := fmt.Sprintf(format, args...)
	j.breaches[rule]++
	d, known := j.defects[rule]
	if !known {
		if j.breaches[rule] <= 10 {
			j.t.Error(msg)
		}
		return
	}
	// The defect, once, then the rule's first three breaches.
	if j.breaches[rule] == 1 {
		j.known = append(j.known, rule+": "+d)
	}
	if j.breaches[rule] <= 3 {
		j.known = append(j.known, "  "+msg)
	}
}

// lateBy is how long after its client's deadline a request may start at
// the service and still count as on time: the receiving agent tolerates
// a caller's clock running behind its own by pipeline.DefaultClockSkew
// (here every clock is the same one), and the caller's agent counts the
// deadline from when it read the request, a little after its client
// sent it.
const lateBy = pipeline.DefaultClockSkew + 100*time.Millisecond

// figures is one case's line of the report: every case logs one, in
// the same form, and docs/reliability.md tabulates a run's.
type figures struct {
	requests, ok int
	kinds        map[string]int
	twice, late  int
	window       string
	p50, p99     time.Duration
	// slowestError is the longest a failed request waited for its
	// answer.
	slowestError  time.Duration
	memory, extra string
	// known are the defects the case names that it met, each followed
	// by its first breaches: report skips the case with them.
	known []string
}

func (f figures) String() string {
	var ks []string
	for k, n := range f.kinds {
		if k != "ok" {
			ks = append(ks, fmt.Sprintf("%s=%d", strings.ReplaceAll(k, " ", "_"), n))
		}
	}
	sort.Strings(ks)
	errs := "none"
	if len(ks) > 0 {
		errs = strings.Join(ks, ",")
	}
	s := fmt.Sprintf("requests=%d ok=%d errors=%s slowest-error=%v post-twice=%d late=%d window=%s p50=%v p99=%v memory=%s",
		f.requests, f.ok, errs, f.slowestError.Round(10*time.Millisecond), f.twice, f.late, f.window,
		f.p50.Round(time.Millisecond), f.p99.Round(time.Millisecond), cmp.Or(f.memory, "-"))
	if f.extra != "" {
		s += " " + f.extra
	}
	return s
}

// check makes the suite's checks of a case's outcomes against the
// ledgers of its services, and logs the case's figures:
//
//   - every request got exactly one outcome: the service's answer or an
//     explicit mesh error (Mesh-Error), never its client's own timeout
//     (a hang), nor, unless v.connErrors, a failed connection;
//   - a request answered 200 ran at some instance;
//   - no POST ran twice;
//   - none started at its service after its client's deadline (lateBy);
//   - a failed request was answered within v.errorWithin;
//   - no more GETs and POSTs failed than v allows.
//
// It returns the figures, for cases that check more.
func check(t reporter, outs []outcome, faultAt time.Time, v verdict, svcs ...*ledgerService) (f figures) {
	t.Helper()
	runs := readLedgers(t, svcs...)
	f = figures{requests: len(outs), kinds: map[string]int{}}
	j := &judge{t: t, defects: v.defects, breaches: map[string]int{}}
	defer func() {
		f.known = j.known
		for rule, n := range j.breaches {
			if _, known := v.defects[rule]; n > 10 && !known {
				t.Errorf("... %d breaches of %q in all", n, rule)
			}
		}
	}()
	seen := map[string]bool{}
	var served []time.Duration
	var first, last time.Duration
	failed := map[string]int{}
	for _, o := range outs {
		if seen[o.id] {
			t.Errorf("request %s: two outcomes", o.id)
		}
		seen[o.id] = true
		k := o.kind()
		f.kinds[k]++
		if k == "ok" {
			f.ok++
			served = append(served, o.done.Sub(o.sent))
			if len(runs[o.id]) == 0 {
				t.Errorf("request %s (%s) answered 200 but never ran at a service", o.id, o.method)
			}
			continue
		}
		failed[o.method]++
		f.slowestError = max(f.slowestError, o.done.Sub(o.sent))
		if took := o.done.Sub(o.sent); v.errorWithin > 0 && took > v.errorWithin {
			j.fail("error-within", "request %s (%s): %s after %v, want an answer within %v", o.id, o.method, k, took.Round(time.Millisecond), v.errorWithin)
		}
		at := o.sent.Sub(faultAt)
		if v.recoverBy > 0 && at >= v.recoverBy {
			j.fail("recover", "request %s (%s) sent %v after the fault: %s, want 200 from %v on", o.id, o.method, at.Round(time.Millisecond), k, v.recoverBy)
		}
		if failed[http.MethodGet]+failed[http.MethodPost] == 1 || at < first {
			first = at
		}
		last = max(last, o.done.Sub(faultAt))
		switch {
		case o.clientErr != nil && (v.connErrors && !strings.Contains(k, "hang")):
		case o.clientErr != nil:
			j.fail("hang", "request %s (%s) got no answer after %v: %v", o.id, o.method, o.done.Sub(o.sent).Round(time.Millisecond), o.clientErr)
		case o.meshError == "":
			j.fail("explicit", "request %s (%s): %d without Mesh-Error (the service answers only 200)", o.id, o.method, o.status)
		}
	}
	for id, ex := range runs {
		if ex[0].method == http.MethodPost && len(ex) > 1 {
			f.twice++
			j.fail("twice", "POST %s ran %d times (at %v)", id, len(ex), ex)
		}
		for _, e := range ex {
			if e.at.After(e.deadline.Add(lateBy)) {
				f.late++
				if v.lateAtService == "" {
					j.fail("late", "request %s (%s) started at %s %v after its client's deadline", id, e.method, e.instance, e.at.Sub(e.deadline).Round(time.Millisecond))
				}
			}
		}
	}
	f.window = "none"
	if len(failed) > 0 {
		f.window = fmt.Sprintf("%+.2fs..%+.2fs", first.Seconds(), last.Seconds())
	}
	if g := failed[http.MethodGet]; v.failedGETs >= 0 && g > v.failedGETs {
		j.fail("failed-get", "%d GETs (idempotent) failed, want at most %d", g, v.failedGETs)
	}
	if p := failed[http.MethodPost]; v.failedPOSTs >= 0 && p > v.failedPOSTs {
		j.fail("failed-post", "%d POSTs failed, want at most %d", p, v.failedPOSTs)
	}
	if n := failed[http.MethodGet] + failed[http.MethodPost]; v.failedShare > 0 && float64(n) > v.failedShare*float64(len(outs)) {
		j.fail("failed-share", "%d of %d requests failed, want at most %.1f%%", n, len(outs), 100*v.failedShare)
	}
	if f.late > 0 && v.lateAtService != "" {
		t.Logf("%d requests started late at the service: %s", f.late, v.lateAtService)
	}
	slices.Sort(served)
	if len(served) > 0 {
		f.p50, f.p99 = served[len(served)/2], served[len(served)*99/100]
	}
	return f
}

// report logs a case's figures in the suite's one form, then skips the
// case if it breached a rule for a defect it names (verdict.defects).
func report(t *testing.T, name string, f figures) {
	t.Helper()
	t.Logf("chaos case=%q %s", name, f)
	if len(f.known) > 0 {
		t.Skipf("defect: %s", strings.Join(f.known, "\n"))
	}
}

// procStatus is a field of /proc/PID/status, in bytes (VmRSS, VmHWM).
func procStatus(p *proc, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
}

// peaks is the peak RSS of each process, for a case's figures:
// "web=12.3MiB,orders-0=..." (an agent by its service's name).
func peaks(ps ...*proc) string {
	var out []string
	for _, p := range ps {
		if hwm, err := procStatus(p, "VmHWM"); err == nil {
			out = append(out, fmt.Sprintf("%s=%.1fMiB", agentLabel(p), float64(hwm)/(1<<20)))
		}
	}
	return strings.Join(out, ",")
}

// agentLabel is a process's name in the figures: an agent by its
// service's name ("web", "orders-0"), a broker as "broker-0".
func agentLabel(p *proc) string {
	return strings.ReplaceAll(strings.TrimSuffix(p.name, "'s agent"), " ", "-")
}

// waitGone fails t unless p exits within d.
func waitGone(t *testing.T, p *proc, d time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("%s still running %v after it was told to stop\n%s", p.name, d, p.out)
	}
}
