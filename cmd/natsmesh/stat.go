package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/meshstat"
)

var statCommand = command{
	name:    "stat",
	summary: "show every service's live golden metrics (rps, success, p50, p99)",
	run:     runStat,
}

func runStat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stat", "[flags]",
		"Asks every agent and gateway for its counters over NATS ($SRV.STATS), twice,\n"+
			"--interval apart, and prints per service its instances (serving/all),\n"+
			"requests per second, success rate and p50/p99 latency over that window, by\n"+
			"subset (@v1) and by caller (<- web), then the service graph's edges\n"+
			"caller -> callee. A dash is a value without data in the window.\n\n"+
			"--watch prints a new table every --interval (redrawn in place on a\n"+
			"terminal) until SIGINT or --count tables. --json prints the report as JSON\n"+
			"instead (one object per line with --watch); docs/observability.md\n"+
			"describes the counters.", stderr)
	watch := fs.Bool("watch", false, "refresh every --interval until interrupted")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	interval := fs.Duration("interval", 2*time.Second, "the `window` between two samples")
	count := fs.Int("count", 0, "with --watch, stop after `n` tables (0: until interrupted)")
	quiet := fs.Duration("quiet-period", meshstat.DefaultQuiet, "how long to wait for more answers after the last one")
	as := fs.String("as", accounts.DefaultAdmin, "the `user` whose inbox the answers go to (the mesh's admin user with generated accounts)")
	var nf natsFlags
	nf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *interval <= 0 {
		return usageErrorf("stat: --interval must be positive")
	}
	if *count < 0 {
		return usageErrorf("stat: --count must not be negative")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := nf.connect(ctx, *as, "natsmesh-stat", log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return failure{asCommand("stat", err)}
	}
	defer nc.Close()
	ctx, stop := refusals(ctx, nc, *as)
	defer stop()
	sampler := meshstat.NewSampler(nc, meshstat.GatherOptions{Quiet: min(*quiet, *interval/2), Timeout: max(*interval, meshstat.DefaultTimeout)})
	if _, err := sampler.Next(ctx); err != nil {
		return stopped("stat", ctx, err)
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	redraw := *watch && !*asJSON && isTerminal(stdout)
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return stopped("stat", ctx, nil)
		case <-tick.C:
		}
		r, err := sampler.Next(ctx)
		if err != nil {
			return stopped("stat", ctx, err)
		}
		switch {
		case *asJSON && *watch:
			err = json.NewEncoder(stdout).Encode(r)
		case *asJSON:
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(r)
		default:
			if redraw {
				io.WriteString(stdout, "\x1b[H\x1b[2J") // home, clear screen
			} else if n > 1 {
				io.WriteString(stdout, "\n")
			}
			err = meshstat.WriteTable(stdout, r)
		}
		if err != nil {
			return failure{fmt.Errorf("stat: %w", err)}
		}
		if !*watch || (*count > 0 && n >= *count) {
			return nil
		}
	}
}

// stopped is nil when ctx ended (Ctrl-C while gathering), the broker's
// refusal when that ended it (see refusals), else err as a failure of
// command.
func stopped(command string, ctx context.Context, err error) error {
	if ctx.Err() != nil {
		// Interrupted: done. Refused by the broker: say why.
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
			return failure{fmt.Errorf("%s: %w", command, cause)}
		}
		return nil
	}
	return failure{fmt.Errorf("%s: %w", command, err)}
}

// isTerminal reports whether w is a character device (a terminal), where
// --watch redraws in place instead of appending.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
