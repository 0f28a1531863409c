package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/cliflag"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// bin is the natsmesh binary built once for all tests.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "natsmesh-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "natsmesh")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// Every process the tests start keeps its per-user files (a broker's
	// store, an agent's last good mesh file) here, never in the real
	// home; a test that leaves something behind forgot its --store or
	// --policy-cache, and fails the run.
	xdg := map[string]string{"XDG_DATA_HOME": filepath.Join(dir, "data"), "XDG_STATE_HOME": filepath.Join(dir, "state")}
	for k, v := range xdg {
		os.Setenv(k, v)
	}
	// And their temporary files (a broker's temporary store, with its
	// system user's seed) in a TMPDIR of the run's own, which must be
	// empty at the end (issue 19: four natsmesh-broker-* directories were
	// left in the user's $TMPDIR, each with a sys.nk seed).
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp)
	code := m.Run()
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		for _, e := range left {
			fmt.Fprintf(os.Stderr, "FAIL: a test left %s in TMPDIR: stop its processes with SIGTERM, so that they remove their temporary files\n", e.Name())
		}
		code = 1
	}
	// No test leaves a goroutine behind (goleak.VerifyTestMain's check,
	// here because this TestMain has its own work after the run).
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	for k, v := range xdg {
		filepath.WalkDir(v, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fmt.Fprintf(os.Stderr, "FAIL: a test left %s in %s: give its broker --store and its agents --policy-cache\n", path, k)
				code = 1
			}
			return nil
		})
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// natsmesh prepares the binary with args and env added to a clean
// environment (no NATSMESH_* inherited from the caller).
func natsmesh(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, cliflag.EnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		t.Fatal(err)
		return -1
	}
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string { return meshtest.FreeAddr(t) }

// startAndStop starts natsmesh broker, waits until it accepts a NATS
// connection, sends SIGTERM and expects exit status 0.
func startAndStop(t *testing.T, env []string, args ...string) {
	t.Helper()
	addr := freeAddr(t)
	if env == nil {
		args = append([]string{"broker", "--listen", addr}, args...)
	} else {
		env = append(env, "NATSMESH_BROKER_LISTEN="+addr)
		args = append([]string{"broker"}, args...)
	}
	p := startProcEnv(t, env, args...)
	waitNATS(t, p, addr)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0\n%s", code, p.stderr)
	}
}

func TestBrokerSignal(t *testing.T) {
	startAndStop(t, nil, "--monitor", "127.0.0.1:-1", "--store", t.TempDir())
}

// TestBrokerDefaultStore: without --store the broker keeps JetStream in
// its own per-user directory (by --name), which outlives it, and says
// where when ready.
func TestBrokerDefaultStore(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	p := startProcEnv(t, []string{"XDG_DATA_HOME=" + data}, "broker", "--listen", addr, "--monitor", "off", "--name", "n1")
	waitNATS(t, p, addr)
	want := filepath.Join(data, "natsmesh", "broker", "n1")
	p.waitUntil(t, "no ready line naming the store", func() error {
		if !strings.Contains(p.stderr.String(), "store="+filepath.Join(want, "jetstream")) {
			return fmt.Errorf("stderr: %s", p.stderr)
		}
		return nil
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d\n%s", code, p.stderr)
	}
	if _, err := os.Stat(filepath.Join(want, "jetstream")); err != nil {
		t.Fatalf("the store did not outlive the broker: %v", err)
	}
}

func TestBrokerEnv(t *testing.T) {
	startAndStop(t, []string{"NATSMESH_BROKER_MONITOR=off", "NATSMESH_BROKER_NO_JETSTREAM=true"})
}

func TestBadConfig(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := []string{"--monitor", "off", "--no-jetstream"}

	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		want    string // on the last line of stderr
		oneLine bool   // stderr is exactly that line (no usage)
	}{
		{"unknown command", nil, []string{"frobnicate"}, `natsmesh: unknown command "frobnicate"`, true},
		{"no command", nil, nil, "Usage: natsmesh", false},
		{"unknown flag", nil, []string{"broker", "--frobnicate"}, "natsmesh: broker: unknown flag --frobnicate: see natsmesh broker --help", true},
		{"typo'd flag", nil, []string{"broker", "--lisen", "127.0.0.1:4222"}, "natsmesh: broker: unknown flag --lisen: did you mean --listen?", true},
		{"typo'd command", nil, []string{"brokr"}, `natsmesh: unknown command "brokr": did you mean "broker"?`, true},
		{"flag before command", nil, []string{"--listen", "x"}, "natsmesh: --listen before a command", true},
		{"bad flag value", nil, []string{"broker", "--max-payload", "lots"}, `natsmesh: broker: invalid value "lots" for flag --max-payload`, true},
		{"stray argument", nil, []string{"broker", "extra"}, `natsmesh: broker: unexpected argument "extra"`, true},
		{"port in use", nil, append([]string{"broker", "--listen", busy.Addr().String()}, off...),
			"natsmesh: broker: listen " + busy.Addr().String() + ": address already in use", true},
		{"monitoring port in use", nil, []string{"broker", "--listen", "127.0.0.1:-1", "--monitor", busy.Addr().String(), "--no-jetstream"},
			"natsmesh: broker: listen " + busy.Addr().String() + ": address already in use", true},
		{"missing config file", nil, append([]string{"broker", "--nats-config", filepath.Join(dir, "nope.conf")}, off...),
			"natsmesh: broker: config file " + filepath.Join(dir, "nope.conf"), true},
		{"invalid tls files", nil, append([]string{"broker", "--tls-cert", garbage, "--tls-key", garbage}, off...),
			"natsmesh: broker: tls: ", true},
		{"bad route", nil, append([]string{"broker", "--cluster", "127.0.0.1:-1", "--routes", "not-a-url"}, off...),
			"natsmesh: broker: cluster routes: ", true},
		{"bad env value", []string{"NATSMESH_BROKER_LAME_DUCK=soon"}, []string{"broker"},
			`natsmesh: broker: NATSMESH_BROKER_LAME_DUCK="soon": `, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, stderr := natsmesh(t, tc.env, tc.args...)
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if code := exitStatus(t, err); code != 2 {
					t.Fatalf("exit status %d, want 2\n%s", code, stderr)
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("natsmesh did not exit\n%s", stderr)
			}
			out := strings.TrimRight(stderr.String(), "\n")
			lines := strings.Split(out, "\n")
			last := lines[len(lines)-1]
			if tc.name == "no command" {
				last = lines[0]
			}
			if !strings.HasPrefix(last, tc.want) {
				t.Errorf("stderr ends with %q, want it to start with %q", last, tc.want)
			}
			if tc.oneLine && len(lines) != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", len(lines), out)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Errorf("stderr shows a panic:\n%s", out)
			}
		})
	}
}

// TestVersion: natsmesh version, --version and -v print the same, naming
// the nats-server and nats.go the binary embeds (from its build
// information, so it cannot go stale).
func TestVersion(t *testing.T) {
	var first string
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		cmd, stdout, stderr := natsmesh(t, nil, args...)
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		out := stdout.String()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 4 || lines[0] != "natsmesh dev" || !strings.HasPrefix(lines[1], "nats-server v2.") ||
			!strings.HasPrefix(lines[2], "nats.go v1.") || !strings.HasPrefix(lines[3], "go1.") {
			t.Fatalf("%v printed %q", args, out)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("%v printed %q, natsmesh version %q", args, out, first)
		}
	}
}

// TestHelp compares help output with testdata/<name>.golden; run
// go test -run TestHelp -update to accept a change.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"help", []string{"help"}},
		{"broker-help", []string{"broker", "--help"}},
		{"bench-help", []string{"bench", "--help"}},
		{"version-help", []string{"version", "-h"}},
		{"agent-help", []string{"agent", "--help"}},
		{"bridge-help", []string{"bridge", "--help"}},
		{"demo-help", []string{"demo", "--help"}},
		{"stat-help", []string{"stat", "--help"}},
		{"ui-help", []string{"ui", "--help"}},
		{"accounts-generate-help", []string{"accounts", "generate", "--help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stdout, stderr := natsmesh(t, nil, tc.args...)
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			got := append(stdout.Bytes(), stderr.Bytes()...)
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, got)
			}
		})
	}
}
