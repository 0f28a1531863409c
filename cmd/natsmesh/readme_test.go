package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/cliflag"
)

// docBlocks returns the ```sh blocks of the section of file (relative to
// the repository's root) whose heading starts with heading (up to the next
// heading of its level), in order.
func docBlocks(t *testing.T, file, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", file))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n"+heading)
	if start < 0 {
		t.Fatalf("%s has no %q section", file, heading)
	}
	section := text[start+1:]
	level := heading[:strings.IndexByte(heading, ' ')+1] // "## "
	if end := strings.Index(section[len(heading):], "\n"+level); end >= 0 {
		section = section[:len(heading)+end]
	}
	var blocks []string
	for rest := section; ; {
		i := strings.Index(rest, "```sh\n")
		if i < 0 {
			break
		}
		rest = rest[i+len("```sh\n"):]
		j := strings.Index(rest, "```")
		if j < 0 {
			t.Fatalf("%s: unterminated ```sh block in %q", file, heading)
		}
		blocks = append(blocks, rest[:j])
		rest = rest[j+3:]
	}
	return blocks
}

// TestReadmeQuickStart runs the README's quick start as written: its ```sh
// blocks, in order, in one bash, against the binary built for these tests
// as bin/natsmesh, so a README that stops working fails make test (issue
// 9, item 12). It uses the README's fixed ports, so it skips, saying why,
// when one is taken (a `make demo` running, say). Every process the script
// starts is in the script's process group, which the test ends.
func TestReadmeQuickStart(t *testing.T) {
	for _, tool := range []string{"bash", "python3", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's quick start needs %s: %v", tool, err)
		}
	}
	if v, err := exec.Command("curl", "--version").Output(); err != nil || !strings.Contains(string(v), "HTTP2") {
		t.Skip("the README's quick start needs a curl with HTTP/2")
	}
	blocks := docBlocks(t, "README.md", "## Quick start")
	script := strings.Join(blocks, "\n")
	if len(blocks) < 3 || !strings.Contains(script, "bin/natsmesh broker") {
		t.Fatalf("quick start has %d sh blocks; want the broker, agents and calls:\n%s", len(blocks), script)
	}
	// The defaults the commands listen on without a flag in the README.
	out, errs := runDocScript(t, script, "4222", "8222", "15001", "15002", "15090", "8080", "15091")

	// What the README says each call prints.
	answers := regexp.MustCompile(`(?m)^orders v[12]$`).FindAllString(out, -1)
	v2 := strings.Count(out, "orders v2\n")
	problems := []string{}
	if len(answers) != 13 {
		problems = append(problems, fmt.Sprintf("%d answers from orders, want 13 (7 through the agent, 2 of them over HTTP/2, 1 out of the mesh, 3 through the gateway, 2 on the secured mesh)", len(answers)))
	}
	if v2 < 4 {
		problems = append(problems, fmt.Sprintf("%d answers from orders v2, want at least the 4 calls that name the subset", v2))
	}
	for _, want := range []string{"HTTP/1.1 503", "Mesh-Error: no-responders", "Mesh-Error: forbidden", "applied ", "revision"} {
		if !strings.Contains(out, want) {
			problems = append(problems, fmt.Sprintf("no %q", want))
		}
	}
	for _, bad := range []string{"deprecated", "is not read", "panic"} {
		if strings.Contains(errs, bad) {
			problems = append(problems, fmt.Sprintf("stderr has %q", bad))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%s\nstdout:\n%s\nstderr:\n%s", strings.Join(problems, "; "), out, errs)
	}
}

// groupAlive reports whether a process of group pgid still runs. Where
// /proc lists processes, zombies (exited, not yet reaped by an init that
// may never reap them) do not count.
func groupAlive(pgid int) bool {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 2 && fields[0] != "Z" && fields[2] == fmt.Sprint(pgid) {
			return true
		}
	}
	return false
}

// runDocScript runs script as written in one bash (-e, -u, pipefail)
// against the binary built for these tests as bin/natsmesh, in a
// directory of its own with its own data, state and temporary
// directories, and returns its stdout and stderr; it fails the test when
// the script fails or leaves anything in its temporary directory. It skips, saying why, when a port the script names on
// 127.0.0.1, or one of defaults (what its commands listen on without a
// flag), is taken (a `make demo` running, say). Every process the script
// starts is in the script's process group, which the test ends.
func runDocScript(t *testing.T, script string, defaults ...string) (out, errs string) {
	t.Helper()
	ports := map[string]bool{}
	for _, m := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(script, -1) {
		ports[m[1]] = true
	}
	for _, p := range defaults {
		ports[p] = true
	}
	for p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+p)
		if err != nil {
			t.Skipf("port %s, which the script uses, is taken: %v", p, err)
		}
		l.Close()
	}

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "natsmesh")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// -e: a command that fails (curl cannot connect, say) ends the run.
	cmd := exec.CommandContext(ctx, "bash", "-e", "-u", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, cliflag.EnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The broker's store and the agents' last good mesh file, which the
	// commands keep in the user's data and state directories, and the
	// script's own temporary directories (mktemp), in the script's
	// directory, which the test removes.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_STATE_HOME="+filepath.Join(dir, "state"), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Files, not pipes: background processes that outlive the script
	// would hold a pipe open and keep Wait waiting.
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		// Whatever the script left running: SIGTERM, then SIGKILL.
		if syscall.Kill(-pgid, syscall.SIGTERM) == nil {
			deadline := time.Now().Add(10 * time.Second)
			for groupAlive(pgid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
	runErr := cmd.Wait()
	read := func(f *os.File) string {
		b, _ := os.ReadFile(f.Name())
		return string(b)
	}
	out, errs = read(stdout), read(stderr)
	if runErr != nil {
		t.Fatalf("the script failed after %v: %v\nstdout:\n%s\nstderr:\n%s", time.Since(start).Round(time.Millisecond), runErr, out, errs)
	}
	t.Logf("the script ran in %v", time.Since(start).Round(time.Millisecond))
	// A reader who runs the steps keeps no directory of theirs (a
	// mktemp -d of files and NKey seeds) after them (issue 19).
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("the steps leave %v in $TMPDIR: remove what they made", names)
	}
	if testing.Verbose() {
		t.Logf("stdout:\n%s", out)
	}

	return out, errs
}

// TestSecurityDocSteps runs docs/security.md's "Running the generated
// configuration" as written: operator mode, the admin's policy apply, get
// and stat with its creds, two agents with theirs, an allowed call and a
// forbidden one.
func TestSecurityDocSteps(t *testing.T) {
	for _, tool := range []string{"bash", "python3", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the steps need %s: %v", tool, err)
		}
	}
	blocks := docBlocks(t, "docs/security.md", "## Running the generated configuration")
	if len(blocks) != 1 {
		t.Fatalf("%d sh blocks, want 1", len(blocks))
	}
	out, errs := runDocScript(t, blocks[0])
	problems := []string{}
	for _, want := range []string{"version: 1\n", "Mesh-Error: forbidden", "applied ", "revision", "orders"} {
		if !strings.Contains(out, want) {
			problems = append(problems, fmt.Sprintf("no %q", want))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%s\nstdout:\n%s\nstderr:\n%s", strings.Join(problems, "; "), out, errs)
	}
}

// TestDocsUseCurrentFlags: no command line in the README, docs/ or
// examples/ uses a flag its command has deprecated (the deprecate calls
// of cmd/natsmesh name them), which a reader would copy and be warned
// about (issue 19: docs/observability.md, docs/mesh-file.md and the
// shop's mesh file ran the gateway with --name after it became
// --service).
func TestDocsUseCurrentFlags(t *testing.T) {
	deprecated := map[string][]string{} // command -> old flags
	srcs, _ := filepath.Glob("*.go")
	call := regexp.MustCompile(`deprecate\(fs, "([a-z-]+)", "[a-z-]+"\)`)
	for _, src := range srcs {
		if strings.HasSuffix(src, "_test.go") || src == "flags.go" {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			cmd := strings.TrimSuffix(src, ".go")
			deprecated[cmd] = append(deprecated[cmd], m[1])
		}
	}
	if len(deprecated["bridge"]) == 0 || len(deprecated["agent"]) == 0 {
		t.Fatalf("found no deprecated flags of the bridge or the agent: %v", deprecated)
	}
	var files []string
	for _, pattern := range []string{"../../README.md", "../../docs/*.md", "../../examples/*/*", "../../examples/*/*/*"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	// A command line: "natsmesh CMD" and what follows on its line and on
	// the lines it continues onto with a trailing backslash.
	line := regexp.MustCompile(`natsmesh ([a-z]+)((?:[^\n]*\\\n)*[^\n]*)`)
	checked := 0
	for _, f := range files {
		// The decisions are history: they name the flags they renamed.
		if fi, err := os.Stat(f); err != nil || fi.IsDir() || strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, "decisions.md") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range line.FindAllStringSubmatch(string(b), -1) {
			checked++
			for _, old := range deprecated[m[1]] {
				if regexp.MustCompile(`(^|\s)--?` + old + `(=|\s|$|[),.;'"]+)`).MatchString(m[2]) {
					t.Errorf("%s: %q uses --%s, which natsmesh %s has deprecated", f, strings.TrimSpace(m[0]), old, m[1])
				}
			}
		}
		// Prose: a line that names one command (the bridge also as "the
		// gateway") and quotes one of its deprecated flags, outside a
		// paragraph that lists the renamed flags ("still accepted").
		for _, para := range strings.Split(string(b), "\n\n") {
			if strings.Contains(para, "still accepted") {
				continue
			}
			for _, l := range strings.Split(para, "\n") {
				var named []string
				for cmd := range deprecated {
					if regexp.MustCompile(`\b`+cmd+`\b`).MatchString(l) || (cmd == "bridge" && strings.Contains(l, "gateway")) {
						named = append(named, cmd)
					}
				}
				if len(named) != 1 {
					continue
				}
				for _, old := range deprecated[named[0]] {
					if strings.Contains(l, "`--"+old+"`") {
						t.Errorf("%s: %q names natsmesh %s's --%s, which it has deprecated", f, strings.TrimSpace(l), named[0], old)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("found only %d natsmesh command lines in %d files", checked, len(files))
	}
}
