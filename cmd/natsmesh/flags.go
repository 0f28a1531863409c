package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// envPrefix is prepended to a flag's upper-cased name (with '-' turned into
// '_') to form the environment variable that also sets it: --max-payload is
// NATSMESH_MAX_PAYLOAD.
const envPrefix = "NATSMESH_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a FlagSet for one subcommand whose usage text shows
// synopsis and summary, then each flag with its default and environment
// variable.
func newFlagSet(name, synopsis, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: natsmesh %s\n\n%s\n", strings.TrimSpace(name+" "+synopsis), summary)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n == 0 {
			return
		}
		fmt.Fprintf(w, "\nFlags:\n")
		printDefaults(w, fs)
		fmt.Fprintf(w, "\nEvery flag may also be set by its environment variable; a flag given\non the command line wins over the variable.\n")
	}
	return fs
}

// printDefaults is flag.PrintDefaults with "--" names and the
// environment variable of each flag.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, " [$%s]\n", envName(f.Name))
	})
}

// parseFlags sets each flag of fs from its environment variable, if set,
// and then parses args, so the command line overrides the environment.
// Errors name the command (and the variable when it is the culprit).
func parseFlags(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s: %s=%q: %v", fs.Name(), envName(f.Name), v, e)
			return
		}
		// A list given on the command line replaces the environment's.
		if l, ok := f.Value.(*stringList); ok {
			l.fromCmdline = false
		}
	})
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// isSet reports whether the flag was given on the command line or through
// its environment variable.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// stringList is a repeatable flag whose every use may also hold a
// comma-separated list: --routes a,b --routes c gives [a b c].
type stringList struct {
	vals        []string
	fromCmdline bool // false until the first Set, or again after the environment
}

func (l *stringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.vals, ",")
}

func (l *stringList) Set(s string) error {
	if !l.fromCmdline {
		l.vals, l.fromCmdline = nil, true
	}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.vals = append(l.vals, v)
		}
	}
	return nil
}
