package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/natsmesh/natsmesh/internal/buildinfo"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

var versionCommand = command{
	name:    "version",
	summary: "print the version, Go version and source revision",
	run:     runVersion,
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Prints the natsmesh version, the Go version it was built with and,\nwhen known, the source revision.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "natsmesh %s\n%s\n", version, runtime.Version())
	if rev, modified := buildinfo.Revision(); rev != "" {
		if modified {
			rev += " (modified)"
		}
		fmt.Fprintf(stdout, "revision %s\n", rev)
	}
	return nil
}
