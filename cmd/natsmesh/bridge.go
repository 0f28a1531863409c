package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
)

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
			"win over path routes, and the longest prefix wins.", stderr)
	var (
		routes   stringList
		logLevel slog.Level
	)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen `address` (host:port)")
	adminAddr := fs.String("admin", "127.0.0.1:15091", "admin `address`: /healthz, /readyz, /debug/pprof/ and the dashboard at /ui/; \"off\" for none")
	fs.Var(&routes, "route", "`routes` HOST_OR_/PREFIX=SERVICE[@SUBSET] or ...=nats:SUBJECT, comma-separated or repeated")
	name := fs.String("name", "bridge", "caller `name` the gateway calls services as")
	timeout := fs.Duration("timeout", pipeline.DefaultTimeout, "per-request `timeout`")
	tlsCert := fs.String("tls-cert", "", "HTTPS certificate `file` (PEM)")
	tlsKey := fs.String("tls-key", "", "HTTPS key `file` (PEM)")
	policy := fs.String("policy", "", "mesh `file` to apply, reloaded when it changes (default: the policies bucket, when there is one; \"off\": built-in policy only)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	var nf natsFlags
	nf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(routes.vals) == 0 {
		return usageErrorf("bridge: no --route given")
	}
	if nf.creds != "" && nf.nkey != "" {
		return usageErrorf("bridge: --creds and --nkey exclude each other")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageErrorf("bridge: --tls-cert and --tls-key go together")
	}
	cfg := bridge.GatewayConfig{Name: *name, Timeout: *timeout}
	for _, s := range routes.vals {
		r, err := bridge.ParseRoute(s)
		if err != nil {
			return err
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("bridge: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Logger = log.With("component", "bridge")
	if err := cfg.Validate(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	defer ln.Close()
	var adminLn net.Listener
	if *adminAddr != "off" {
		if adminLn, err = net.Listen("tcp", *adminAddr); err != nil {
			return fmt.Errorf("bridge: admin: %w", err)
		}
		defer adminLn.Close()
	}
	nc, err := nf.connect(ctx, *name, "natsmesh-bridge:"+*name, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for NATS: nothing to drain
		}
		return fmt.Errorf("bridge: %w", err)
	}
	defer nc.Close()
	cfg.Conn = nc
	if cfg.Policies, err = policies.Watch(ctx, nc, *policy, policies.SourceConfig{Logger: cfg.Logger}); err != nil {
		return err
	}
	if cfg.Policies != nil {
		defer cfg.Policies.Close()
	}
	ui, err := dashboardHandler(nc)
	if err != nil {
		return err
	}
	cfg.Admin = map[string]http.Handler{"GET " + uiMount: ui, "GET /config": policies.Handler(cfg.Policies)}
	g, err := bridge.NewGateway(cfg)
	if err != nil {
		return err
	}
	adminSrv := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
	if adminLn != nil {
		go adminSrv.Serve(adminLn)
		defer adminSrv.Close()
		log.Info("natsmesh bridge admin", "url", "http://"+adminLn.Addr().String()+"/", "dashboard", "http://"+adminLn.Addr().String()+uiMount)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln, tlsConfig) }()
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	log.Info("natsmesh bridge ready", "url", scheme+"://"+ln.Addr().String(), "nats", nc.ConnectedUrlRedacted(), "routes", len(cfg.Routes))

	select {
	case err := <-served:
		return failure{fmt.Errorf("bridge: %w", err)}
	case <-ctx.Done():
	}
	log.Info("natsmesh bridge shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *timeout+5*time.Second)
	defer cancel()
	err = g.Shutdown(sctx)
	if e := <-served; err == nil {
		err = e
	}
	if e := nc.Drain(); err == nil {
		err = e
	}
	if err != nil {
		return failure{fmt.Errorf("bridge: shutdown: %w", err)}
	}
	return nil
}
