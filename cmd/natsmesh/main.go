// Command natsmesh runs the parts of a natsmesh service mesh: the broker
// today, the agent and bridge as they land. Each subcommand lives in its own
// file and is listed once in commands below.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
	for _, c := range commands {
		if c.name == args[0] {
			return exitCode(c.run(ctx, args[1:], stdout, stderr), stderr)
		}
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
	fmt.Fprintf(w, "\nRun natsmesh <command> --help for the flags of a command.\n")
}
