package main

import (
	"flag"
	"io"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/cliflag"
)

// The flag conventions of every command (environment variables, --config,
// deprecated names, one-line errors) are package cliflag's; these are its
// names in the commands.

func newFlagSet(name, synopsis, summary string, stderr io.Writer) *flag.FlagSet {
	return cliflag.NewSet(name, synopsis, summary, stderr)
}

func parseFlags(fs *flag.FlagSet, args []string) error { return cliflag.Parse(fs, args) }

func deprecate(fs *flag.FlagSet, old, target string) { cliflag.Deprecate(fs, old, target) }

func isSet(fs *flag.FlagSet, name string) bool { return cliflag.IsSet(fs, name) }

func configFlag(fs *flag.FlagSet) *string { return cliflag.ConfigFlag(fs) }

func applyConfigFile(fs *flag.FlagSet, path string) error { return cliflag.ApplyConfigFile(fs, path) }

// stringList is a repeatable flag of comma-separated values.
type stringList = cliflag.List

// takeWithinUsage is --take-within's, the agent's and the bridge's.
const takeWithinUsage = "how long a call waits for a sign of life from the instance that got it (its answer, or its agent's accept) " +
	"before it is sent again to the service's queue group: what a frozen or dead instance costs a call, from 200ms to 10s"
