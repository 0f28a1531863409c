package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchreport"
	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchrun"
)

var benchCommand = command{
	name:    "bench",
	summary: "measure the mesh against direct HTTP and an nginx pair, side by side",
	run:     runBench,
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags]",
		"Starts, on loopback, an echo service and each way of reaching it (direct\n"+
			"HTTP and gRPC, the natsmesh sidecar pair, natsmesh in process, a pair of\n"+
			"nginx reverse proxies where nginx is installed), each component its own\n"+
			"process, and measures them one after another under the same loads: an open\n"+
			"loop at --rate, then closed loops with each of --conns callers. The\n"+
			"sidecar and in-process HTTP scenarios also run without telemetry\n"+
			"(-notel), their loads interleaved with the metrics-on ones, for the cost of\n"+
			"telemetry per call, and with their route marked idempotent (-idempotent:\n"+
			"no confirm exchange), for the cost of at most once. The streaming\n"+
			"scenarios (a gRPC server stream of 1,000 messages of --size bytes, a\n"+
			"download and an upload of --transfer bytes) each run through the sidecar\n"+
			"pair beside direct, closed loops only, and report MB/s and each agent's\n"+
			"peak RSS. Prints a table and the targets met, and writes the same as\n"+
			"JSON. --scaling runs the sidecar pair as one thing grows (services\n"+
			"registered, body size, connections, a route hop). With --compare, it then\n"+
			"prints the change of each scenario and load from an earlier run's JSON\n"+
			"(throughput, p50, p99, CPU, allocations, peak RSS); --from compares a\n"+
			"recorded run instead of running one.", stderr)
	var (
		duration    time.Duration
		rate        float64
		conns       stringList
		size        int
		transfer    int64
		jsonPath    string
		scenarios   stringList
		nginx       string
		brokerProcs int
		compare     string
		from        string
		scaling     bool
		profile     string
	)
	conns.Values = []string{"1", "32"}
	fs.DurationVar(&duration, "duration", 5*time.Second, "how long each load runs")
	fs.Float64Var(&rate, "rate", 1000, "open-loop `requests/s` (0: no open loop)")
	fs.Var(&conns, "conns", "closed-loop concurrent `connections`, comma-separated")
	fs.IntVar(&size, "size", 1024, "request and response body `bytes`, and each message's of a gRPC stream")
	fs.Int64Var(&transfer, "transfer", 64<<20, "`bytes` of each download and upload of the streaming scenarios")
	fs.StringVar(&jsonPath, "results", filepath.Join("bench-results", "latest.json"), "JSON result `file` (\"off\": none)")
	fs.Var(&scenarios, "scenarios", "`names` to run, comma-separated (default all: "+strings.Join(benchrun.Scenarios, ",")+")")
	fs.StringVar(&nginx, "nginx", "", "nginx `binary` (default: nginx in PATH or /usr/sbin)")
	fs.IntVar(&brokerProcs, "broker-procs", 0, "CPU `cores` each broker process runs on (natsmesh broker --procs; 0: its default, every core)")
	fs.BoolVar(&scaling, "scaling", false, "run the scaling scenarios (alone unless --scenarios names others): 1, 100 and 1,000 services registered; 1 KiB, 64 KiB and 1 MiB bodies; 1, 32 and 256 connections; a route hop in a 3-broker cluster")
	fs.StringVar(&profile, "profile", "", "`directory` for each measured load's CPU and allocation profiles of the agents, the brokers and the bench process (go tool pprof)")
	fs.StringVar(&compare, "compare", "", "earlier results `file` (JSON) to print each scenario's change from")
	fs.StringVar(&from, "from", "", "results `file` (JSON) to compare with --compare, instead of running")
	deprecate(fs, "json", "results")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if from != "" {
		if compare == "" {
			return usageErrorf("bench: --from needs --compare")
		}
		rep, err := benchreport.ReadFile(from)
		if err != nil {
			return fmt.Errorf("bench: %v", err)
		}
		return writeComparison(stdout, compare, rep)
	}
	if transfer <= 0 {
		return fmt.Errorf("bench: --transfer must be positive")
	}
	opts := benchrun.Options{Duration: duration, Rate: rate, Size: size, Transfer: transfer, Scenarios: scenarios.Values, Scaling: scaling, Profile: profile, Nginx: nginx, BrokerProcs: brokerProcs, Progress: stderr, Revision: version}
	if rate == 0 {
		opts.Rate = -1
	}
	if duration <= 0 {
		return fmt.Errorf("bench: --duration must be positive")
	}
	for _, c := range conns.Values {
		n, err := strconv.Atoi(c)
		if err != nil {
			return fmt.Errorf("bench: --conns %q: %v", c, err)
		}
		opts.Conns = append(opts.Conns, n)
	}
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return fmt.Errorf("bench: --profile: %v", err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return failure{fmt.Errorf("bench: finding the natsmesh binary: %v", err)}
	}
	opts.Exe = exe
	rep, err := benchrun.Run(ctx, opts)
	if err != nil {
		if rep == nil {
			return err
		}
		return failure{err}
	}
	if err := rep.WriteTable(stdout); err != nil {
		return failure{err}
	}
	if jsonPath != "" && jsonPath != "off" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return failure{err}
		}
		if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
			return failure{fmt.Errorf("bench: %v", err)}
		}
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return failure{fmt.Errorf("bench: %v", err)}
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", jsonPath)
	}
	if compare != "" {
		fmt.Fprintln(stdout)
		return writeComparison(stdout, compare, rep)
	}
	return nil
}

// writeComparison prints the change from the run recorded in basePath to
// rep.
func writeComparison(stdout io.Writer, basePath string, rep *benchreport.Report) error {
	base, err := benchreport.ReadFile(basePath)
	if err != nil {
		return failure{fmt.Errorf("bench: --compare: %v", err)}
	}
	return benchreport.WriteComparison(stdout, base, rep)
}
