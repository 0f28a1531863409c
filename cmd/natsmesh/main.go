// Command natsmesh runs the parts of a natsmesh service mesh: the broker,
// the sidecar agent, the edge gateway (bridge), and the tools around them
// (policy, accounts, bench, demo). Each subcommand lives in its own file and
// is listed once in commands below; internal/cliflag holds the flag conventions
// (one meaning per name, per-command environment variables, one-line
// errors with suggestions; docs/decisions.md, entry 48).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/cliflag"
)

// commands lists the subcommands in the order help shows them.
var commands = []command{
	brokerCommand,
	agentCommand,
	bridgeCommand,
	policyCommand,
	statCommand,
	uiCommand,
	accountsCommand,
	benchCommand,
	benchEchoCommand,
	demoCommand,
	versionCommand,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts a graceful stop, a second one kills the
	// process as usual, so a stuck drain can be cut short.
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches args to a subcommand and returns the process exit status:
// 0 on success, 2 for usage and configuration errors, 1 for failures while
// running.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) {
		w, code := stderr, 2
		if len(args) > 0 {
			w, code = stdout, 0
		}
		usage(w)
		return code
	}
	switch args[0] {
	case "--version", "-version", "-v":
		args = append([]string{"version"}, args[1:]...)
	}
	var names []string
	for _, c := range commands {
		if c.name == args[0] {
			return exitCode(c.run(ctx, args[1:], stdout, stderr), stderr)
		}
		if !c.hidden {
			names = append(names, c.name)
		}
	}
	if strings.HasPrefix(args[0], "-") {
		return exitCode(usageErrorf("%s before a command: want natsmesh <command> [flags] (see natsmesh help)", args[0]), stderr)
	}
	if s := cliflag.Closest(args[0], names); s != "" {
		return exitCode(usageErrorf("unknown command %q: did you mean %q? (see natsmesh help)", args[0], s), stderr)
	}
	return exitCode(usageErrorf("unknown command %q (see natsmesh help)", args[0]), stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: natsmesh <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		if c.hidden {
			continue
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun natsmesh <command> --help for the flags of a command, natsmesh --version\n(or -v) for the version.\n")
}

// program is how to run this binary again in the commands a command
// prints: the path it was started with when that names a file
// (bin/natsmesh from make), else "natsmesh" (a binary on PATH).
func program() string {
	if p := os.Args[0]; strings.ContainsRune(p, filepath.Separator) && !strings.HasSuffix(p, ".test") {
		return p
	}
	return "natsmesh"
}
