package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/bridge"
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
			"h2c:// for gRPC) while the upstream passes its health checks. Outbound, the\n"+
			"service calls other services through the agent: as an HTTP proxy\n"+
			"(HTTP_PROXY=http://<--http>, or Host: <service>), through a per-service\n"+
			"port (--bind), or over gRPC with :authority = <service> (--grpc).\n"+
			"On SIGINT or SIGTERM it stops taking calls, finishes those in flight and exits.", stderr)
	var (
		cfg      agent.Config
		nf       natsFlags
		binds    stringList
		httpAddr string
		grpcAddr string
		admin    string
		config   string
		grace    time.Duration
		logLevel slog.Level
	)
	fs.StringVar(&cfg.Service, "service", "", "this service's `name` ([a-z0-9-]; required)")
	fs.StringVar(&cfg.Subset, "subset", "", "this instance's subset `label`, e.g. a version (v2) or canary")
	fs.StringVar(&cfg.Version, "version", "", "this instance's `version`, shown in discovery")
	fs.StringVar(&cfg.Upstream, "upstream", "", "the local service: http://127.0.0.1:8080 or h2c://127.0.0.1:9090 (`URL`); empty: outbound only")
	fs.StringVar(&httpAddr, "http", "127.0.0.1:15001", "outbound HTTP proxy listener `address`, or \"off\"")
	fs.StringVar(&grpcAddr, "grpc", "127.0.0.1:15002", "outbound gRPC (h2c) listener `address`, or \"off\"")
	fs.Var(&binds, "bind", "per-destination listener `SERVICE=ADDR` (orders=127.0.0.1:9191), comma-separated or repeated")
	fs.StringVar(&admin, "admin", "127.0.0.1:15090", "admin listener `address` (/healthz, /readyz), or \"off\"")
	fs.StringVar(&cfg.Health.Path, "health", "", "HTTP health check `path` on the upstream (default: TCP connect; gRPC health for h2c)")
	fs.DurationVar(&cfg.Health.Interval, "health-interval", 2*time.Second, "time between health checks")
	fs.IntVar(&cfg.Health.FailThreshold, "health-fails", 3, "failed checks in a row that withdraw the instance")
	fs.IntVar(&cfg.Health.PassThreshold, "health-passes", 2, "passed checks in a row that restore it")
	fs.IntVar(&cfg.MaxConcurrent, "max-concurrent", 1024, "calls in flight to the upstream before answering overloaded (-1: no limit)")
	fs.DurationVar(&cfg.Timeout, "timeout", bridge.DefaultTimeout, "deadline of an outbound call whose caller set none")
	fs.DurationVar(&grace, "grace", 30*time.Second, "longest time shutdown waits for calls in flight")
	fs.StringVar(&config, "config", "", "YAML `file` of settings named like these flags (flags and environment win)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	procs := fs.Int("procs", 1, "CPU `cores` the agent runs on at once (GOMAXPROCS; 0: all). One, like a sidecar proxy's single worker, costs the least CPU per call")
	nf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if config != "" {
		if err := applyConfigFile(fs, config); err != nil {
			return err
		}
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
	if err := cfg.Validate(); err != nil {
		return err
	}
	type bind struct{ service, addr string }
	var bindings []bind
	for _, b := range binds.vals {
		service, addr, ok := strings.Cut(b, "=")
		if !ok || service == "" || addr == "" {
			return fmt.Errorf("agent: --bind %q: want SERVICE=ADDR", b)
		}
		if err := bridge.ValidateName("service", service); err != nil {
			return fmt.Errorf("agent: --bind %q: %v", b, err)
		}
		bindings = append(bindings, bind{service, addr})
	}

	// Listen before connecting, so a port in use is a configuration error
	// reported at once.
	type listener struct {
		l       net.Listener
		serve   func(*agent.Agent, net.Listener) error
		purpose string
	}
	var listeners []listener
	// On the error returns nothing serves them yet; after a clean run the
	// agent's shutdown has closed them already, and closing again is harmless.
	defer func() {
		for _, l := range listeners {
			l.l.Close()
		}
	}()
	add := func(addr, purpose string, serve func(*agent.Agent, net.Listener) error) error {
		if addr == "" || addr == "off" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("agent: %s listener: %v", purpose, err)
		}
		listeners = append(listeners, listener{l, serve, purpose})
		return nil
	}
	if err := add(httpAddr, "HTTP proxy", (*agent.Agent).ServeHTTPProxy); err != nil {
		return err
	}
	if err := add(grpcAddr, "gRPC proxy", (*agent.Agent).ServeGRPCProxy); err != nil {
		return err
	}
	for _, b := range bindings {
		service := b.service
		if err := add(b.addr, "bind "+service, func(a *agent.Agent, l net.Listener) error { return a.ServeBind(l, service) }); err != nil {
			return err
		}
	}
	var adminL net.Listener
	if admin != "" && admin != "off" {
		l, err := net.Listen("tcp", admin)
		if err != nil {
			return fmt.Errorf("agent: admin listener: %v", err)
		}
		adminL = l
		defer adminL.Close()
	}

	nc, err := nf.connect(ctx, "natsmesh-agent:"+cfg.Service, bridge.InboxPrefix(cfg.Service), log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for NATS: nothing to drain
		}
		return fmt.Errorf("agent: %v", err)
	}
	defer nc.Close()
	a, err := agent.New(nc, cfg)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		return failure{err}
	}
	errc := make(chan error, len(listeners)+1)
	for _, l := range listeners {
		go func() {
			if err := l.serve(a, l.l); err != nil {
				errc <- fmt.Errorf("agent: %s: %v", l.purpose, err)
			}
		}()
		log.Info("listening", "purpose", l.purpose, "addr", l.l.Addr().String())
	}
	if adminL != nil {
		srv := &http.Server{Handler: adminHandler(a), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(adminL)
		defer srv.Close()
		log.Info("listening", "purpose", "admin", "addr", adminL.Addr().String())
	}
	log.Info("natsmesh agent started", "service", cfg.Service, "subset", cfg.Subset, "upstream", cfg.Upstream, "nats", nc.ConnectedUrl())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		log.Error("listener failed", "err", runErr)
	}
	log.Info("natsmesh agent shutting down: draining")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return failure{fmt.Errorf("agent: shutdown: %v", err)}
	}
	// The last replies may still sit in the connection's buffer.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		log.Warn("flushing NATS connection", "err", err)
	}
	log.Info("natsmesh agent stopped")
	if runErr != nil {
		return failure{runErr}
	}
	return nil
}

// adminHandler serves the agent's liveness and readiness for an
// orchestrator: /healthz is 200 while the process runs, /readyz is 200 while
// the instance takes calls.
func adminHandler(a *agent.Agent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	// Profiles, for finding what a call costs; the admin listener is on
	// loopback unless told otherwise.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.HasInbound() && !a.Serving() {
			http.Error(w, "not serving: the upstream does not pass its health checks", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}
