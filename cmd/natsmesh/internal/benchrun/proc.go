package benchrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// proc is one component running as a child process.
type proc struct {
	name string
	// admin is the admin address of a natsmesh agent ("" for others),
	// whose /debug/pprof/ tells its allocations.
	admin string
	cmd   *exec.Cmd
	log   string // its stdout and stderr
	done  chan struct{}
	err   error
}

// startProc starts name as exe args, with stdout and stderr in dir.
func startProc(dir, name, exe string, args ...string) (*proc, error) {
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
		return nil, fmt.Errorf("benchrun: starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end (SIGTERM) and kills it after grace.
func (p *proc) stop(grace time.Duration) {
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

// failed describes why the process is not usable, with the end of its log.
func (p *proc) failed(err error) error {
	b, _ := os.ReadFile(p.log)
	tail := strings.TrimSpace(string(b))
	if len(tail) > 800 {
		tail = "..." + tail[len(tail)-800:]
	}
	return fmt.Errorf("benchrun: %s: %w; its log:\n%s", p.name, err, tail)
}

// waitReady polls ready until it returns nil, the process exits or timeout
// passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.failed(fmt.Errorf("exited before ready: %v", p.err))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p.failed(fmt.Errorf("not ready after %v: %v", timeout, err))
		}
	}
}

func tcpReady(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

func httpReady(url string) func() error {
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

// logReady is ready once the process's log holds line.
func logReady(p *proc, line string) func() error {
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

// adminClient reads the agents' admin endpoints.
var adminClient = &http.Client{Timeout: 5 * time.Second}

// mallocs returns the heap allocations the process has made since it
// started (runtime.MemStats.Mallocs, from the "# Mallocs = N" line of its
// heap profile), and false when it has no admin port or the read failed.
func (p *proc) mallocs() (uint64, bool) {
	if p.admin == "" {
		return 0, false
	}
	resp, err := adminClient.Get("http://" + p.admin + "/debug/pprof/heap?debug=1")
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

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cpuTime returns the user plus system CPU time of process pid ("self" for
// this one) so far.
func cpuTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("benchrun: bad /proc/%s/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("benchrun: short /proc/%s/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0 and later); false
// if the kernel refused, in which case the peak is the lifetime's.
func resetPeakRSS(pid string) bool {
	return os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns VmHWM, the peak resident set size, in bytes.
func peakRSS(pid string) (int64, error) {
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
	return 0, fmt.Errorf("benchrun: no VmHWM in /proc/%s/status", pid)
}
