package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// DefaultBridgeAdmin is the bridge's default admin address: next to the
// agent's 15090 (and its 15001, 15002), so a bridge and an agent run side
// by side on their defaults; make demo serves its dashboard there too.
const DefaultBridgeAdmin = "127.0.0.1:15091"

var bridgeCommand = command{
	name:    "bridge",
	summary: "run the edge gateway: outside HTTP clients -> meshed services over NATS",
	run:     runBridge,
}

func runBridge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bridge", "[flags]",
		"Serves outside HTTP clients and forwards each request over NATS to the meshed\n"+
			"service its route names, until SIGINT or SIGTERM; then stops accepting,\n"+
			"finishes the requests in flight and drains the NATS connection.\n\n"+
			"Routes (--route, repeated or comma-separated):\n"+
			"  HOST=SERVICE[@SUBSET]     api.example.com=orders\n"+
			"  /PREFIX=SERVICE[@SUBSET]  /orders=orders@v2\n"+
			"  HOST/PREFIX=SERVICE       api.example.com/v1=orders\n"+
			"  /PREFIX=nats:SUBJECT      /time=nats:svc.time (a NATS-native endpoint)\n"+
			"A trailing +strip removes the prefix from the forwarded path. Host routes\n"+
			"win over path routes, and the longest prefix wins. A subset is also\n"+
			"written SUBSET.SERVICE (/v2=v2.orders), as agents address it.\n\n"+
			"The admin port (--admin) serves /healthz, /readyz (ready while connected\n"+
			"to NATS and not shutting down) for a load balancer, /metrics, the mesh's\n"+
			"dashboard at /ui/ and, with --pprof, /debug/pprof/.", stderr)
	var (
		routes   stringList
		logLevel slog.Level
		tf       telemetryFlags
	)
	listen := fs.String("gateway", "127.0.0.1:8080", "edge gateway listener `address` (host:port) for outside HTTP clients")
	fs.Var(&routes, "route", "`routes` HOST_OR_/PREFIX=SERVICE[@SUBSET] or ...=nats:SUBJECT, comma-separated or repeated")
	name := fs.String("service", "bridge", "the gateway's service `name` in the mesh: the caller its calls come from")
	timeout := fs.Duration("timeout", pipeline.DefaultTimeout, "deadline of a call whose caller set none (of a stream: of its first answer)")
	streamIdle := fs.Duration("stream-idle", wire.DefaultStreamIdle, "how long a stream may hear nothing from the callee's agent (which sends keep-alives) before it fails, from 100ms to 10m")
	takeWithin := fs.Duration("take-within", wire.DefaultTakeWithin, takeWithinUsage)
	adminAddr := fs.String("admin", DefaultBridgeAdmin, "admin listener `address` (/healthz, /readyz, /metrics, the dashboard at /ui/, /debug/pprof/ with --pprof), or \"off\"")
	profiles := fs.Bool("pprof", false, "serve Go's profiles at the admin listener's /debug/pprof/ (a heap profile holds request headers)")
	tlsCert := fs.String("tls-cert", "", "HTTPS certificate `file` (PEM)")
	tlsKey := fs.String("tls-key", "", "HTTPS key `file` (PEM)")
	policy := fs.String("policy", "", "mesh `file` to apply, reloaded when it changes (default: the policies bucket; until it holds a file, one that authenticates to the broker serves nothing; \"off\": the built-in policy only, refused when the connection authenticates)")
	policyCache := fs.String("policy-cache", "", "`file` the last good mesh file from the bucket is kept in, and started with when the store has none or does not answer "+
		"(default: $XDG_STATE_HOME/natsmesh/NAME/mesh.json, NAME the --service, or ~/.local/state/natsmesh/...; \"off\": none)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	config := configFlag(fs)
	var nf natsFlags
	nf.register(fs)
	tf.register(fs)
	deprecate(fs, "listen", "gateway")
	deprecate(fs, "name", "service")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyConfigFile(fs, *config); err != nil {
		return err
	}
	if len(routes.Values) == 0 {
		return usageErrorf("bridge: no --route given")
	}
	if nf.creds != "" && nf.nkey != "" {
		return usageErrorf("bridge: --creds and --nkey exclude each other")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageErrorf("bridge: --tls-cert and --tls-key go together")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg := bridge.EdgeConfig{
		Gateway:     bridge.GatewayConfig{Name: *name, Timeout: *timeout, StreamIdle: *streamIdle, TakeWithin: *takeWithin, Logger: log.With("component", "bridge")},
		Connect:     nf.config(log),
		Listen:      *listen,
		Admin:       *adminAddr,
		Profiles:    *profiles,
		Policy:      *policy,
		PolicyCache: policyCacheFile(*policyCache, *policy, *name, log),
		AdminConn: func(nc *nats.Conn) (map[string]http.Handler, error) {
			ui, err := dashboardHandler(nc)
			return map[string]http.Handler{"GET " + uiMount: ui}, err
		},
	}
	for _, s := range routes.Values {
		r, err := bridge.ParseRoute(s)
		if err != nil {
			return err
		}
		cfg.Gateway.Routes = append(cfg.Gateway.Routes, r)
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	tel, err := tf.build(*name, stdout)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	defer tel.Shutdown(context.Background())
	cfg.Gateway.Telemetry = tel
	cfg.Gateway.Admin = map[string]http.Handler{"GET /metrics": tel.MetricsHandler()}
	// NewEdge validates; Start listens before it connects, so a bad
	// setting or a port in use is reported at once.
	edge, err := bridge.NewEdge(cfg)
	if err != nil {
		return err
	}
	if err := edge.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for NATS: nothing to drain
		}
		return asCommand("bridge", err)
	}
	if a := edge.AdminAddr(); a != nil {
		log.Info("natsmesh bridge admin", "url", "http://"+a.String()+"/", "dashboard", "http://"+a.String()+uiMount)
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	log.Info("natsmesh bridge ready", "url", scheme+"://"+edge.Addr().String(), "nats", edge.Conn().ConnectedUrlRedacted(), "routes", len(cfg.Gateway.Routes))

	var runErr error
	select {
	case runErr = <-edge.Err():
		log.Error("listener failed", "err", runErr)
	case <-ctx.Done():
	}
	log.Info("natsmesh bridge shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *timeout+5*time.Second)
	defer cancel()
	if err := edge.Shutdown(sctx); err != nil {
		return failure{fmt.Errorf("bridge: shutdown: %w", err)}
	}
	if runErr != nil {
		return failure{runErr}
	}
	return nil
}
