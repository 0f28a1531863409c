package main

import (
	"context"
	"fmt"
	"io"

	"github.com/natsmesh/natsmesh/cmd/natsmesh/internal/benchecho"
)

// benchEchoCommand is the echo service natsmesh bench starts as a process
// of its own; hidden from help, as only bench runs it.
var benchEchoCommand = command{
	name:    "bench-echo",
	summary: "echo service for natsmesh bench",
	hidden:  true,
	run:     runBenchEcho,
}

func runBenchEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-echo", "[flags]",
		"Serves the echo service of natsmesh bench until SIGINT or SIGTERM, and\n"+
			"prints \"ready\" once it serves.", stderr)
	var cfg benchecho.Config
	fs.StringVar(&cfg.HTTP, "echo-http", "", "HTTP echo listener `address`")
	fs.StringVar(&cfg.GRPC, "echo-grpc", "", "h2c gRPC echo (grpc.testing.TestService) listener `address`")
	fs.StringVar(&cfg.NATS, "nats", "", "NATS `URL`: also serve in process through an agent")
	fs.StringVar(&cfg.Service, "service", "echo", "in-process agent's service `name`")
	fs.StringVar(&cfg.Policy, "policy", "", "mesh `file` the in-process agent applies")
	tel := fs.String("telemetry", "off", "in-process agent's telemetry `mode`: on (metrics, as natsmesh agent records by default) or off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *tel {
	case "on":
		cfg.Telemetry = true
	case "off":
	default:
		return usageErrorf("bench-echo: --telemetry %q: want on or off", *tel)
	}
	if cfg.HTTP == "" && cfg.GRPC == "" && cfg.NATS == "" {
		return fmt.Errorf("bench-echo: nothing to serve: give --echo-http, --echo-grpc or --nats")
	}
	err := benchecho.Serve(ctx, cfg, func() { fmt.Fprintln(stdout, "ready") })
	if err != nil {
		return failure{err}
	}
	return nil
}
