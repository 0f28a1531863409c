package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvPrefix starts every environment variable natsmesh reads.
const EnvPrefix = "NATSMESH_"

// sharedFlags are the NATS connection flags: they mean the same in every
// command that has them, so besides the command's own variable
// (NATSMESH_AGENT_NATS) each also reads NATSMESH_<FLAG> (NATSMESH_NATS),
// which points every natsmesh command of a shell at one NATS deployment.
// Every other flag reads only its command's variable, so a setting
// exported for one command cannot change another (docs/decisions.md).
var sharedFlags = map[string]bool{
	"nats": true, "creds": true, "nkey": true,
	"nats-tls-ca": true, "nats-tls-cert": true, "nats-tls-key": true,
}

// envToken is a command or flag name as it appears in a variable:
// upper case, '-' and ' ' turned into '_'.
func envToken(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(s))
}

// envNames returns the variables that set flag name of command cmd
// (fs.Name(), "agent" or "policy apply"), the one that wins first:
// NATSMESH_AGENT_TIMEOUT, and for a shared flag also NATSMESH_NATS.
func envNames(cmd, name string) []string {
	names := []string{EnvPrefix + envToken(cmd) + "_" + envToken(name)}
	if sharedFlags[name] {
		names = append(names, EnvPrefix+envToken(name))
	}
	return names
}

// NewSet returns a FlagSet for one subcommand whose usage text shows
// synopsis and summary, then each flag with its default and environment
// variables.
func NewSet(name, synopsis, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: natsmesh %s\n\n%s\n", strings.TrimSpace(name+" "+synopsis), summary)
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			if !isAlias(f) {
				n++
			}
		})
		if n == 0 {
			return
		}
		fmt.Fprintf(w, "\nFlags:\n")
		printDefaults(w, fs)
		fmt.Fprintf(w, "\nEvery flag may also be set by its environment variable, $NATSMESH_%s_<FLAG>", envToken(name))
		if fs.Lookup("nats") != nil && fs.Lookup("nkey") != nil {
			fmt.Fprintf(w, "\n(the NATS connection flags also by $NATSMESH_<FLAG>, shared by every command)")
		}
		fmt.Fprintf(w, ".\nA flag given on the command line wins over the variables.\n")
		var old []string
		fs.VisitAll(func(f *flag.Flag) {
			if a, ok := f.Value.(*alias); ok {
				old = append(old, "--"+f.Name+" (--"+a.target+")")
			}
		})
		if len(old) > 0 {
			fmt.Fprintf(w, "Deprecated names, still accepted with a warning: %s.\n", strings.Join(old, ", "))
		}
	}
	return fs
}

// printDefaults is flag.PrintDefaults with "--" names and the
// environment variables of each flag; deprecated aliases are left out.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if isAlias(f) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  " + dashes(f.Name) + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, " [$%s]\n", strings.Join(envNames(fs.Name(), f.Name), ", $"))
	})
}

// dashes is how help writes a flag: -f for one letter, --name otherwise
// (flag accepts either).
func dashes(name string) string {
	if len(name) == 1 {
		return "-"
	}
	return "--"
}

// alias is a deprecated flag name that sets another flag and says so
// once per use on the FlagSet's output.
type alias struct {
	fs     *flag.FlagSet
	w      io.Writer // the command's stderr
	name   string
	target string
}

// Deprecate registers old as a deprecated name of the flag target, which
// must already be defined.
func Deprecate(fs *flag.FlagSet, old, target string) {
	if fs.Lookup(target) == nil {
		panic("cliflag: Deprecate: no flag " + target)
	}
	fs.Var(&alias{fs: fs, w: fs.Output(), name: old, target: target}, old, "deprecated: use --"+target)
}

func isAlias(f *flag.Flag) bool {
	_, ok := f.Value.(*alias)
	return ok
}

func (a *alias) String() string {
	if a == nil || a.fs == nil {
		return ""
	}
	return a.fs.Lookup(a.target).Value.String()
}

func (a *alias) Set(s string) error {
	fmt.Fprintf(a.w, "natsmesh: warning: %s: --%s is deprecated; use --%s\n", a.fs.Name(), a.name, a.target)
	// Through the FlagSet, so that IsSet sees the target as set.
	return a.fs.Set(a.target, s)
}

// IsBoolFlag lets a deprecated boolean flag stand without a value.
func (a *alias) IsBoolFlag() bool {
	b, ok := a.fs.Lookup(a.target).Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Parse sets each flag of fs from its environment variables, if set,
// and then parses args, so the command line overrides the environment.
// Errors are one line that names the command (and the variable when it is
// the culprit); an unknown flag gets the Closest known one suggested, not
// the whole usage text. A variable of the unscoped form natsmesh read
// before (NATSMESH_HTTP for the agent's proxy) gets a warning naming its
// replacement, since it is no longer read.
func Parse(fs *flag.FlagSet, args []string) error {
	var err error
	var unread []string
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		target := f
		if a, ok := f.Value.(*alias); ok {
			target = fs.Lookup(a.target)
		}
		names := envNames(fs.Name(), target.Name)
		if !sharedFlags[f.Name] {
			if old := EnvPrefix + envToken(f.Name); old != names[0] {
				if _, ok := os.LookupEnv(old); ok {
					unread = append(unread, fmt.Sprintf("%s is not read (natsmesh reads per-command variables); use %s", old, names[0]))
				}
			}
		}
		if isAlias(f) {
			return
		}
		// The command's own variable wins over the shared one: set the
		// shared one first.
		for i := len(names) - 1; i >= 0; i-- {
			v, ok := os.LookupEnv(names[i])
			if !ok {
				continue
			}
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %s=%q: %v", fs.Name(), names[i], v, e)
				return
			}
			// A list given later (command line, command's variable)
			// replaces this one.
			if l, ok := f.Value.(*List); ok {
				l.fromCmdline = false
			}
		}
	})
	for _, u := range unread {
		fmt.Fprintf(fs.Output(), "natsmesh: warning: %s: %s\n", fs.Name(), u)
	}
	if err != nil {
		return err
	}
	// Errors are one line (flagError); only --help prints the usage.
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err = fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return flagError(fs, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// flagError rewrites an error of flag.FlagSet.Parse as one line in
// natsmesh's terms: --names, and for an unknown flag the Closest known one.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		hint := fmt.Sprintf("see natsmesh %s --help", fs.Name())
		if s := Closest(name, flagNames(fs)); s != "" {
			hint = fmt.Sprintf("did you mean %s%s?", dashes(s), s)
		}
		return fmt.Errorf("%s: unknown flag %s%s: %s", fs.Name(), dashes(name), name, hint)
	}
	// "invalid value "x" for flag -max-payload: ...", "flag needs an
	// argument: -service"
	msg = strings.Replace(msg, "for flag -", "for flag --", 1)
	msg = strings.Replace(msg, "argument: -", "argument: --", 1)
	return fmt.Errorf("%s: %s", fs.Name(), msg)
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !isAlias(f) {
			names = append(names, f.Name)
		}
	})
	return names
}

// Closest returns the candidate nearest to s by edit distance
// (Levenshtein), or "" when none is near enough to be a plausible typo: a
// distance of at most a third of the longer name, and at least 1 or 2 for
// short ones. A candidate that s is a prefix of ("--upstr") also counts.
func Closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(s, c)
		limit := max(len(s), len(c)) / 3
		limit = max(limit, min(2, len(s)-1))
		if d > limit && !(len(s) >= 3 && strings.HasPrefix(c, s)) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b (insertions,
// deletions and substitutions of bytes).
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// IsSet reports whether the flag was given on the command line (by its
// name or a deprecated alias) or through an environment variable.
func IsSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		n := f.Name
		if a, ok := f.Value.(*alias); ok {
			n = a.target
		}
		set = set || n == name
	})
	return set
}

// List is a repeatable flag whose every use may also hold a
// comma-separated list: --routes a,b --routes c gives [a b c].
type List struct {
	Values      []string // in order, empty items dropped
	fromCmdline bool     // false until the first Set, or again after the environment
}

func (l *List) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.Values, ",")
}

func (l *List) Set(s string) error {
	if !l.fromCmdline {
		l.Values, l.fromCmdline = nil, true
	}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.Values = append(l.Values, v)
		}
	}
	return nil
}
