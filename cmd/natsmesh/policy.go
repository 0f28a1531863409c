package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/internal/userdir"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
)

var policyCommand = command{
	name:    "policy",
	summary: "apply, show and diff the live mesh file (policies, who may call whom)",
	run:     runPolicy,
}

const policyUsage = `Usage: natsmesh policy <subcommand> [flags]

Manages the live mesh file: the one the agents watch, kept in the broker's
JetStream KV bucket "` + live.Bucket + `" (see docs/mesh-file.md).

Subcommands:
  apply -f FILE          validate FILE, show what changes and make it live
  get [SERVICE] [--json] print the live file (or one service with its merged
                         policies) and its revision
  diff -f FILE           show what apply -f FILE would change

Run natsmesh policy <subcommand> --help for its flags.
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return usageErrorf("policy: no subcommand given (apply, get or diff)")
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	switch args[0] {
	case "apply":
		return runPolicyApply(ctx, args[1:], stdout, stderr)
	case "get":
		return runPolicyGet(ctx, args[1:], stdout, stderr)
	case "diff":
		return runPolicyDiff(ctx, args[1:], stdout, stderr)
	}
	return usageErrorf("policy: unknown subcommand %q (apply, get or diff)", args[0])
}

// policyFlags are the flags every policy subcommand has.
type policyFlags struct {
	nats natsFlags
	as   string
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	p.nats.register(fs)
	fs.StringVar(&p.as, "as", accounts.DefaultAdmin, "the `user` to act as: its inbox prefix is where answers go (the mesh's admin user with generated accounts)")
}

// policyTimeout bounds a policy command's work once connected: a handful
// of small JetStream requests.
const policyTimeout = 30 * time.Second

// connect connects to NATS for a policy command, with its timeout once
// connected. Call the returned func when done.
func (p *policyFlags) connect(ctx context.Context, stderr io.Writer) (*nats.Conn, context.Context, func(), error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := p.nats.connect(ctx, p.as, "natsmesh-policy", log)
	if err != nil {
		return nil, nil, nil, failure{asCommand("policy", err)}
	}
	// The broker's refusals end ctx at once with the reason (refusals).
	rctx, stop := refusals(ctx, nc, p.as)
	ctx, cancel := context.WithTimeout(rctx, policyTimeout)
	return nc, ctx, func() { cancel(); stop(); nc.Close() }, nil
}

// open connects to NATS and opens the policies bucket (creating it if
// needed, and saying so). Close the returned func when done.
func (p *policyFlags) open(ctx context.Context, stderr io.Writer) (*live.Store, *nats.Conn, context.Context, func(), error) {
	nc, ctx, closeAll, err := p.connect(ctx, stderr)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var s *live.Store
		if s, err = live.OpenStore(ctx, js); err == nil {
			if s.Created() {
				note := ""
				if n := s.ReplicasNote(); n != "" {
					note = fmt.Sprintf(" (JetStream cannot place %d: %s)", live.Replicas, n)
				}
				fmt.Fprintf(stderr, "natsmesh: created the bucket %s with %d replica(s)%s\n", live.Bucket, s.Replicas(), note)
			}
			return s, nc, ctx, closeAll, nil
		}
	}
	err = refused(ctx, err)
	closeAll()
	return nil, nil, nil, nil, failure{fmt.Errorf("policy: %w", err)}
}

// liveFile returns the live file as get reads it, or nil at revision 0 if
// none was applied. A live file that no longer parses (after an upgrade,
// or written by hand) is reported and treated as none, so apply can
// replace it.
func liveFile(ctx context.Context, get func(context.Context) (*policies.File, uint64, error), stderr io.Writer) (*policies.File, uint64, error) {
	f, rev, err := get(ctx)
	switch {
	case errors.Is(err, live.ErrNotFound):
		return nil, 0, nil
	case errors.Is(err, policies.ErrInvalid):
		fmt.Fprintf(stderr, "natsmesh: warning: the live mesh file (revision %d) is invalid:\n%v\n", rev, err)
		return nil, rev, nil
	case err != nil:
		return nil, 0, failure{fmt.Errorf("policy: %w", refused(ctx, err))}
	}
	return f, rev, nil
}

// against parses the mesh file that `policy apply` and `policy diff` take
// with -f, connects to NATS and reads the live file, for comparing the
// two. Call done when finished.
type against struct {
	path      string
	file, old *policies.File
	rev       uint64
	store     *live.Store // open to write (apply), or nil (diff)
	nc        *nats.Conn
	done      func()
}

// loadAgainstLive reads the live file for a command that writes it
// (write: apply) from the bucket, opened and created if needed, through
// its stream's leader; else (diff) by direct get, as `policy get` and the
// agents read, creating nothing.
func loadAgainstLive(ctx context.Context, name, synopsis, summary, fileUsage string, write bool, args []string, stderr io.Writer) (*against, context.Context, error) {
	fs := newFlagSet(name, synopsis, summary, stderr)
	file := fs.String("f", "", fileUsage)
	var pf policyFlags
	pf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if *file == "" {
		return nil, nil, usageErrorf("%s: no -f FILE given", name)
	}
	f, err := policies.ParseFile(*file)
	if err != nil {
		return nil, nil, err
	}
	a := &against{path: *file, file: f}
	var get func(context.Context) (*policies.File, uint64, error)
	if write {
		a.store, a.nc, ctx, a.done, err = pf.open(ctx, stderr)
		if err != nil {
			return nil, nil, err
		}
		get = a.store.Get
	} else {
		var nc *nats.Conn
		nc, ctx, a.done, err = pf.connect(ctx, stderr)
		if err != nil {
			return nil, nil, err
		}
		a.nc = nc
		get = func(ctx context.Context) (*policies.File, uint64, error) { return live.Get(ctx, nc) }
	}
	if a.old, a.rev, err = liveFile(ctx, get, stderr); err != nil {
		a.done()
		return nil, nil, err
	}
	return a, ctx, nil
}

func runPolicyApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, ctx, err := loadAgainstLive(ctx, "policy apply", "-f FILE [flags]",
		"Validates the mesh file FILE, prints what changes against the live one, and\n"+
			"makes it live: every agent watching the bucket picks it up. Nothing is\n"+
			"written when nothing changes, or when the live file changed meanwhile.",
		"mesh `file` to apply (YAML)", true, args, stderr)
	if err != nil {
		return err
	}
	defer a.done()
	changes := policies.Diff(a.old, a.file)
	if len(changes) == 0 && a.old != nil {
		fmt.Fprintf(stdout, "no changes: revision %d is live\n", a.rev)
		return nil
	}
	if a.old == nil {
		fmt.Fprintf(stdout, "no valid mesh file was live: applying one with %d services\n", len(a.file.Services))
	} else {
		printChanges(stdout, changes)
	}
	newRev, err := a.store.ApplyIf(ctx, a.file, a.rev)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return failure{fmt.Errorf("policy apply: the live file changed from revision %d while applying; run diff again", a.rev)}
	}
	if err != nil {
		return failure{fmt.Errorf("policy apply: %w", refused(ctx, err))}
	}
	fmt.Fprintf(stdout, "applied %s: revision %d\n", a.path, newRev)
	warnUnservedSplits(ctx, a.nc, a.file, stderr)
	return nil
}

// warnUnservedSplits says which subsets the file's splits send calls to
// that no instance serves now, as the mesh's discovery answers: those
// calls fall back to the split's other subsets (docs/mesh-file.md,
// "split"), which may not be what was meant.
func warnUnservedSplits(ctx context.Context, nc *nats.Conn, f *policies.File, stderr io.Writer) {
	type target struct{ service, subset, where string }
	var targets []target
	add := func(service, where string, split map[string]int) {
		for sub, w := range split {
			if w > 0 {
				targets = append(targets, target{service, sub, where})
			}
		}
	}
	for name, svc := range f.Services {
		if svc.Policy != nil {
			add(name, "services."+name+".policy.split", svc.Policy.Split)
		}
		for _, r := range svc.Routes {
			add(name, "services."+name+".routes."+r.Name+".split", r.Split)
			if r.Policy != nil {
				add(name, "services."+name+".routes."+r.Name+".policy.split", r.Policy.Split)
			}
		}
	}
	if len(targets) == 0 || nc == nil {
		return
	}
	sample, err := meshstat.Gather(ctx, nc, meshstat.GatherOptions{Timeout: 2 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "natsmesh: could not ask which subsets are served now: %v\n", err)
		return
	}
	served := map[[2]string]bool{}
	for _, s := range sample.Snapshots {
		if s.Serving {
			served[[2]string{s.Service, s.Subset}] = true
		}
	}
	slices.SortFunc(targets, func(a, b target) int { return strings.Compare(a.where+a.subset, b.where+b.subset) })
	anyServed := map[string]bool{}
	for _, t := range targets {
		anyServed[t.where] = anyServed[t.where] || served[[2]string{t.service, t.subset}]
	}
	for _, t := range targets {
		if served[[2]string{t.service, t.subset}] {
			continue
		}
		then := "they fall back to the split's other subsets"
		if !anyServed[t.where] {
			then = "nor any other subset of the split: its calls get no-responders until one does"
		}
		fmt.Fprintf(stderr, "natsmesh: warning: %s sends calls to subset %s of %s, which no instance serves now; %s\n",
			t.where, t.subset, t.service, then)
	}
}

func runPolicyDiff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, _, err := loadAgainstLive(ctx, "policy diff", "-f FILE [flags]",
		"Validates the mesh file FILE and prints what apply would change in the live\n"+
			"one: + added, - removed, ~ changed, by field path. It reads the live file as\n"+
			"get does, and creates nothing.",
		"mesh `file` to compare with the live one (YAML)", false, args, stderr)
	if err != nil {
		return err
	}
	defer a.done()
	fmt.Fprintf(stdout, "--- live (revision %d)\n+++ %s\n", a.rev, a.path)
	changes := policies.Diff(a.old, a.file)
	if len(changes) == 0 {
		fmt.Fprintln(stdout, "no changes")
	}
	printChanges(stdout, changes)
	return nil
}

func printChanges(w io.Writer, changes []policies.Change) {
	for _, c := range changes {
		fmt.Fprintln(w, c)
	}
}

func runPolicyGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy get", "[SERVICE] [flags]",
		"Prints the live mesh file and its revision, in canonical form with the\n"+
			"defaults filled in. With SERVICE, prints that service and the merged\n"+
			"policy of its calls: for calls that match no route, and for each route.", stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of YAML")
	var pf policyFlags
	pf.register(fs)
	service, args := takeOperand(fs, args)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// A read by direct get, as the agents read: it needs no right over
	// the bucket but that, creates nothing, and any replica answers.
	nc, ctx, done, err := pf.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer done()
	f, rev, err := live.Get(ctx, nc)
	if errors.Is(err, live.ErrNotFound) {
		return failure{errors.New("policy get: no mesh file applied yet (natsmesh policy apply -f FILE)")}
	}
	if err != nil {
		return failure{fmt.Errorf("policy get: %w", refused(ctx, err))}
	}
	var out any = f.Canonical()
	if service != "" {
		v, ok := f.View(service)
		if !ok {
			return failure{fmt.Errorf("policy get: no service %q in revision %d", service, rev)}
		}
		out = v
	}
	if *asJSON {
		key := "file"
		if service != "" {
			key = "service"
		}
		b, err := json.MarshalIndent(map[string]any{"revision": rev, key: out}, "", "  ")
		if err != nil {
			return failure{err}
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	y, err := policies.ToYAML(out)
	if err != nil {
		return failure{err}
	}
	_, err = fmt.Fprintf(stdout, "# revision %d\n%s", rev, y)
	return err
}

// takeOperand removes the one operand (a word that is neither a flag nor
// a flag's value) from args, wherever it stands, since flag stops parsing
// at the first operand.
func takeOperand(fs *flag.FlagSet, args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return args[i+1], append(args[:i:i], args[i+2:]...)
			}
			return "", args
		}
		if !strings.HasPrefix(a, "-") {
			return a, append(args[:i:i], args[i+1:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil && !hasValue {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++ // the next word is this flag's value
			}
		}
	}
	return "", args
}

// policyCacheFile is the --policy-cache of an agent or gateway named name:
// the flag's file, none for "off" or when the mesh file does not come from
// the bucket (--policy FILE or off), and by default
// $XDG_STATE_HOME/natsmesh/<name>/mesh.json (userdir.State).
func policyCacheFile(flagValue, policy, name string, log *slog.Logger) string {
	switch {
	case policy != "", flagValue == live.Off:
		return ""
	case flagValue != "":
		return flagValue
	}
	path, err := userdir.State(name, "mesh.json")
	if err != nil {
		log.Warn("no file to keep the last good mesh file in; give --policy-cache", "err", err)
		return ""
	}
	return path
}
