package benchproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/natsmesh/natsmesh/internal/freeaddr"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// Proc is one component running as a child process.
type Proc struct {
	Name string
	// Admin is the admin address of a natsmesh agent ("" for others),
	// whose /debug/pprof/ tells its allocations.
	Admin string
	// Pprof is the address whose /debug/pprof/ serves the process's Go
	// profiles ("" for none): an agent's admin address, a broker's
	// profiling port.
	Pprof string
	cmd   *exec.Cmd
	log   string // its stdout and stderr
	done  chan struct{}
	err   error
}

// Start starts name as exe args, with stdout and stderr in dir/name.log.
func Start(dir, name, exe string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	// Every component is configured by its flags alone: a NATSMESH_*
	// variable of the caller's shell (NATSMESH_NATS, say) must not point
	// one elsewhere.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATSMESH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("benchproc: starting %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stop asks the process to end (SIGTERM) and kills it after grace.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Failed describes why the process is not usable, with the end of its log.
func (p *Proc) Failed(err error) error {
	b, _ := os.ReadFile(p.log)
	tail := strings.TrimSpace(string(b))
	if len(tail) > 800 {
		tail = "..." + tail[len(tail)-800:]
	}
	return fmt.Errorf("benchproc: %s: %w; its log:\n%s", p.Name, err, tail)
}

// WaitReady polls ready until it returns nil, the process exits or timeout
// passes.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.Failed(fmt.Errorf("exited before ready: %v", p.err))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p.Failed(fmt.Errorf("not ready after %v: %v", timeout, err))
		}
	}
}

// TCPReady is ready once addr accepts a TCP connection.
func TCPReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// HTTPReady is ready once url answers a GET with 200 OK.
func HTTPReady(url string) func() error {
	return func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
}

// LogReady is ready once the process's log holds line.
func LogReady(p *Proc, line string) func() error {
	return func() error {
		f, err := os.Open(p.log)
		if err != nil {
			return err
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.TrimSpace(s.Text()) == line {
				return nil
			}
		}
		return fmt.Errorf("no %q line yet", line)
	}
}

// AdminClient reads the agents' admin endpoints and the brokers'
// monitors.
var AdminClient = &http.Client{Timeout: 5 * time.Second}

// Mallocs returns the heap allocations the process has made since it
// started (runtime.MemStats.Mallocs, from the "# Mallocs = N" line of its
// heap profile), and false when it has no admin port or the read failed.
func (p *Proc) Mallocs() (uint64, bool) {
	if p.Admin == "" {
		return 0, false
	}
	resp, err := AdminClient.Get("http://" + p.Admin + "/debug/pprof/heap?debug=1")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "# Mallocs = "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// FreeAddr returns a loopback address with a port free at the time of the
// call, below the ephemeral range, where the load's own connections
// cannot take it before the process binds it (package freeaddr).
func FreeAddr() (string, error) { return freeaddr.Loopback() }

// CPUTime returns the user plus system CPU time of process pid ("self" for
// this one) so far.
func CPUTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("benchproc: bad /proc/%s/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("benchproc: short /proc/%s/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// ResetPeakRSS resets VmHWM to the current RSS (Linux 4.0 and later); false
// if the kernel refused, in which case the peak is the lifetime's.
func ResetPeakRSS(pid string) bool {
	return os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0) == nil
}

// PeakRSS returns VmHWM, the peak resident set size, in bytes.
func PeakRSS(pid string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("benchproc: no VmHWM in /proc/%s/status", pid)
}

// ContextSwitches returns the context switches, voluntary and not, of
// every thread of process pid ("self" for this one) so far. A thread that
// has ended no longer counts: Go seldom ends one.
func ContextSwitches(pid string) (int64, error) {
	tasks, err := filepath.Glob("/proc/" + pid + "/task/*/status")
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("benchproc: no threads of process %s", pid)
	}
	var n int64
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n, nil
}

// RWSyscalls returns the read-like and write-like system calls (read,
// write, readv, writev, send, recv, ...: syscr plus syscw of
// /proc/<pid>/io) process pid has made so far; other calls (futex,
// epoll_pwait, nanosleep) are not counted there.
func RWSyscalls(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return 0, err
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "syscr" || k == "syscw") {
			c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("benchproc: /proc/%s/io: %w", pid, err)
			}
			n += c
		}
	}
	return n, nil
}

// Profile saves the process's CPU profile and the allocations it makes
// over the next d (whole seconds, at least one) as path+".cpu.pprof" and
// path+".allocs.pprof", read from its Pprof address; nothing when it has
// none. Both are taken at once, so the allocations are those of the same
// seconds (the allocs profile's delta: go tool pprof -sample_index
// alloc_objects).
func (p *Proc) Profile(ctx context.Context, d time.Duration, path string) error {
	if p.Pprof == "" {
		return nil
	}
	secs := strconv.Itoa(max(1, int(d/time.Second)))
	client := &http.Client{Timeout: d + 30*time.Second}
	errs := make(chan error, 2)
	for _, kind := range []string{"profile", "allocs"} {
		go func() {
			name := path + ".cpu.pprof"
			if kind == "allocs" {
				name = path + ".allocs.pprof"
			}
			errs <- fetch(ctx, client, "http://"+p.Pprof+"/debug/pprof/"+kind+"?seconds="+secs, name)
		}()
	}
	return errors.Join(<-errs, <-errs)
}

func fetch(ctx context.Context, client *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("benchproc: %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}
