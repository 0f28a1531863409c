package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/buildinfo"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

var versionCommand = command{
	name:    "version",
	summary: "print the version, the nats-server and nats.go it embeds, Go version and revision",
	run:     runVersion,
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Prints the natsmesh version, the versions of nats-server (the embedded\n"+
		"broker) and nats.go (the client) it was built with, the Go version and,\n"+
		"when known, the source revision. natsmesh --version and -v do the same.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "natsmesh %s\n", version)
	for _, dep := range []struct{ name, path string }{
		{"nats-server", "github.com/nats-io/nats-server/v2"},
		{"nats.go", "github.com/nats-io/nats.go"},
	} {
		if v := buildinfo.Dependency(dep.path); v != "" {
			fmt.Fprintf(stdout, "%s %s\n", dep.name, v)
		}
	}
	fmt.Fprintf(stdout, "%s\n", runtime.Version())
	if rev, modified := buildinfo.Revision(); rev != "" {
		if modified {
			rev += " (modified)"
		}
		fmt.Fprintf(stdout, "revision %s\n", rev)
	}
	return nil
}
