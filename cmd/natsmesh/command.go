package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one natsmesh subcommand.
type command struct {
	name    string
	summary string // one line for natsmesh help
	hidden  bool   // left out of help (internal helpers such as bench-echo)
	// run parses args (the arguments after the command name) and runs until
	// done or until ctx ends (SIGINT, SIGTERM). An error is printed as one
	// line "natsmesh: <error>"; see exitCode for the status.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// failure marks an error that happened while running, as opposed to a
// usage or configuration error: natsmesh exits 1 instead of 2.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

func usageErrorf(format string, v ...any) error { return fmt.Errorf(format, v...) }

// exitCode prints err, if any, and maps it to the exit status: 0 for none
// or a help request, 1 for a failure, 2 for everything else (bad flags, bad
// configuration, a port in use).
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "natsmesh: %v\n", err)
	if errors.As(err, new(failure)) {
		return 1
	}
	return 2
}

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// asCommand presents err, from a library package shared by several
// commands (agent.Connect), as command cmd's: "bridge: no NATS connection
// ..." rather than "bridge: agent: no NATS connection ...". errors.Is and
// errors.As still see err.
func asCommand(cmd string, err error) error {
	msg := err.Error()
	for _, pkg := range []string{"agent: ", "bridge: ", "policies: "} {
		msg = strings.TrimPrefix(msg, pkg)
	}
	return prefixed{msg: cmd + ": " + msg, err: err}
}

type prefixed struct {
	msg string
	err error
}

func (p prefixed) Error() string { return p.msg }
func (p prefixed) Unwrap() error { return p.err }
