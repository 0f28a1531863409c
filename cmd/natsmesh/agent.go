package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

var agentCommand = command{
	name:    "agent",
	summary: "run the sidecar agent beside one service instance",
	run:     runAgent,
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent", "--service NAME [--upstream URL] [flags]",
		"Runs the sidecar of one instance of a service. Inbound, it takes the\n"+
			"service's calls from NATS and makes them to --upstream (http:// for HTTP,\n"+
			"h2c:// for gRPC; https:// and h2:// over TLS, with --upstream-ca and, for a\n"+
			"service that asks for one, a client certificate) while the upstream passes\n"+
			"its health checks. Outbound, the service calls other services through the\n"+
			"agent: as an HTTP proxy (HTTP_PROXY=http://<--proxy>, or Host: <service>),\n"+
			"through a per-service port (--bind), or over gRPC with :authority =\n"+
			"<service> (--grpc-proxy).\n"+
			"A destination is SERVICE (any instance) or SUBSET.SERVICE (v2.orders),\n"+
			"optionally followed by .mesh or a --domain (orders.svc.cluster.local).\n"+
			"The admin port serves /healthz, /readyz, /metrics and, with --pprof,\n"+
			"/debug/pprof/ (Go profiles).\n"+
			"On SIGINT or SIGTERM it stops taking calls, finishes those in flight and exits.", stderr)
	var (
		profiles bool
		cfg      agent.Config
		nf       natsFlags
		binds    stringList
		domains  stringList
		httpAddr string
		grpcAddr string
		admin    string
		policy   string
		grace    time.Duration
		logLevel slog.Level
		tf       telemetryFlags
	)
	fs.StringVar(&cfg.Service, "service", "", "this service's `name` ([a-z0-9-]; required)")
	fs.StringVar(&cfg.Subset, "subset", "", "this instance's subset `label`, e.g. a version (v2) or canary; callers reach it as v2.SERVICE")
	fs.StringVar(&cfg.Version, "service-version", "", "this instance's `version` (semantic: 1.2.3), shown in discovery")
	fs.StringVar(&cfg.Upstream, "upstream", "", "the local service (`URL`): http://HOST:PORT[/BASE-PATH] or h2c://HOST:PORT (gRPC), https://... or h2://... over TLS; empty: outbound only")
	upstreamCA := fs.String("upstream-ca", "", "CA `file` (PEM) the https:// or h2:// upstream's certificate must be signed by (default: the system's roots)")
	upstreamCert := fs.String("upstream-cert", "", "client certificate `file` (PEM) for an upstream that asks for one (mutual TLS), with --upstream-key")
	upstreamKey := fs.String("upstream-key", "", "`file` (PEM) of --upstream-cert's key")
	fs.StringVar(&httpAddr, "proxy", "127.0.0.1:15001", "outbound HTTP proxy listener `address`, or \"off\"")
	fs.StringVar(&grpcAddr, "grpc-proxy", "127.0.0.1:15002", "outbound gRPC (h2c) proxy listener `address`, or \"off\"")
	fs.Var(&binds, "bind", "per-destination listener `DEST=ADDR` (orders=127.0.0.1:9191, v2.orders=...), comma-separated or repeated")
	fs.Var(&domains, "domain", "mesh `domain` accepted after a service name (svc.cluster.local: http://orders.svc.cluster.local/), comma-separated or repeated; .mesh always is")
	fs.StringVar(&admin, "admin", "127.0.0.1:15090", "admin listener `address` (/healthz, /readyz, /metrics, /debug/pprof/ with --pprof), or \"off\"")
	fs.BoolVar(&profiles, "pprof", false, "serve Go's profiles at the admin listener's /debug/pprof/ (a heap profile holds request headers)")
	fs.StringVar(&cfg.Health.Path, "health", "", "HTTP health check `path` on the upstream (default: TCP connect; gRPC health for h2c)")
	fs.StringVar((*string)(&cfg.Health.GRPC), "health-grpc", "auto", "how an h2c upstream is checked: auto (grpc.health.v1, or only that it answers if it has none), health (grpc.health.v1 must say SERVING) or connect (TCP)")
	fs.DurationVar(&cfg.Health.Interval, "health-interval", 2*time.Second, "time between health checks")
	fs.IntVar(&cfg.Health.FailThreshold, "health-fails", 3, "failed checks in a row that withdraw the instance")
	fs.IntVar(&cfg.Health.PassThreshold, "health-passes", 2, "passed checks in a row that restore it")
	fs.IntVar(&cfg.MaxConcurrent, "max-concurrent", 0, "fixed bound of the calls in flight to the upstream, past which calls are answered overloaded (0: adaptive, learned from the upstream's latency, at most 1024; -1: no limit)")
	fs.DurationVar(&cfg.Timeout, "timeout", pipeline.DefaultTimeout, "deadline of a call whose caller set none (of a stream: of its first answer)")
	fs.DurationVar(&cfg.ClockSkew, "clock-skew", pipeline.DefaultClockSkew, "how far this host's clock may be ahead of a caller's: a call is not started past its caller's deadline by more (negative: callers' deadlines counted from receipt only)")
	fs.DurationVar(&cfg.StreamIdle, "stream-idle", wire.DefaultStreamIdle, "how long a stream may hear nothing from the other side's agent (which sends keep-alives) before it fails, from 100ms to 10m")
	fs.DurationVar(&cfg.TakeWithin, "take-within", wire.DefaultTakeWithin, takeWithinUsage)
	fs.DurationVar(&grace, "grace", 30*time.Second, "longest time shutdown waits for calls in flight")
	fs.StringVar(&policy, "policy", "", "mesh `file` to apply, reloaded when it changes (default: the policies bucket; until it holds a file, one that authenticates to the broker serves nothing; \"off\": the built-in policy only, refused when the connection authenticates)")
	policyCache := fs.String("policy-cache", "", "`file` the last good mesh file from the bucket is kept in, and started with when the store has none or does not answer "+
		"(default: $XDG_STATE_HOME/natsmesh/SERVICE/mesh.json, or ~/.local/state/natsmesh/...; \"off\": none)")
	config := configFlag(fs)
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	procs := fs.Int("procs", 1, "CPU `cores` the agent runs on at once (GOMAXPROCS; 0: all). One, like a sidecar proxy's single worker, costs the least CPU per call")
	nf.register(fs)
	tf.register(fs)
	deprecate(fs, "http", "proxy")
	deprecate(fs, "grpc", "grpc-proxy")
	deprecate(fs, "version", "service-version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyConfigFile(fs, *config); err != nil {
		return err
	}
	cfg.Domains = domains.Values
	if *upstreamCA != "" || *upstreamCert != "" || *upstreamKey != "" {
		tc, err := agent.LoadUpstreamTLS(*upstreamCA, *upstreamCert, *upstreamKey)
		if err != nil {
			return err
		}
		cfg.UpstreamTLS = tc
	}
	if cfg.Service == "" {
		return errors.New("agent: --service is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel})).With("component", "agent")
	cfg.Logger = log
	if *procs < 0 {
		return fmt.Errorf("agent: --procs %d: want 0 or more", *procs)
	}
	// An operator's GOMAXPROCS wins over the default, not over the flag.
	if _, env := os.LookupEnv("GOMAXPROCS"); *procs > 0 && (!env || isSet(fs, "procs")) {
		// With GOMAXPROCS > 1, every call's wake-ups also wake idle
		// threads that spin looking for work: measured, one core costs
		// 25-40% less CPU per call and cuts the added latency at low load
		// (see docs/decisions.md).
		runtime.GOMAXPROCS(*procs)
	}
	tel, err := tf.build(cfg.Service, stdout)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer tel.Shutdown(context.Background())
	cfg.Telemetry = tel
	cfg.Admin = map[string]http.Handler{"GET /metrics": tel.MetricsHandler()}
	sc := agent.SidecarConfig{Agent: cfg, Connect: nf.config(log), HTTP: httpAddr, GRPC: grpcAddr, Admin: admin, Profiles: profiles, Policy: policy,
		PolicyCache: policyCacheFile(*policyCache, policy, cfg.Service, log)}
	for _, b := range binds.Values {
		dest, addr, ok := strings.Cut(b, "=")
		if !ok || dest == "" || addr == "" {
			return fmt.Errorf("agent: --bind %q: want SERVICE=ADDR or SUBSET.SERVICE=ADDR", b)
		}
		sc.Binds = append(sc.Binds, agent.Bind{Dest: dest, Addr: addr})
	}
	// NewSidecar validates; Start listens before it connects, so a bad
	// setting or a port in use is reported at once.
	side, err := agent.NewSidecar(sc)
	if err != nil {
		return err
	}
	if err := side.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for NATS: nothing to drain
		}
		return err // no broker, or refused credentials: configuration (exit 2)
	}
	log.Info("natsmesh agent started", "service", cfg.Service, "subset", cfg.Subset, "upstream", cfg.Upstream, "nats", side.Conn().ConnectedUrlRedacted())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-side.Err():
		log.Error("listener failed", "err", runErr)
	}
	log.Info("natsmesh agent shutting down: draining")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := side.Shutdown(sctx); err != nil {
		return failure{fmt.Errorf("agent: shutdown: %v", err)}
	}
	log.Info("natsmesh agent stopped")
	if runErr != nil {
		return failure{runErr}
	}
	return nil
}
