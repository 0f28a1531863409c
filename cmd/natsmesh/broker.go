package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/natsmesh/natsmesh/broker"
)

var brokerCommand = command{
	name:    "broker",
	summary: "run the mesh's NATS broker (embedded nats-server with JetStream)",
	run:     runBroker,
}

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker", "[flags]",
		"Runs an embedded nats-server until SIGINT or SIGTERM, then drains clients\n"+
			"in lame-duck mode and exits. With --nats-config, that nats-server\n"+
			"configuration file is loaded first and the flags given are applied on top\n"+
			"of it.", stderr)
	var (
		cfg      broker.Config
		routes   stringList
		remotes  stringList
		logLevel slog.Level
	)
	fs.StringVar(&cfg.Listen, "listen", broker.DefaultListen, "NATS client listener `address` (host:port; port -1 picks a free one)")
	fs.StringVar(&cfg.HTTP, "monitor", broker.DefaultHTTP, "nats-server monitoring `address` (/varz, /healthz, ...), or \"off\"")
	fs.StringVar(&cfg.ConfigFile, "nats-config", "", "nats-server configuration `file` to load first (accounts generate writes one)")
	config := configFlag(fs)
	fs.StringVar(&cfg.StoreDir, "store", "", "JetStream store `directory`, where the mesh file is kept (default: this broker's own, kept across restarts: "+
		"$XDG_DATA_HOME/natsmesh/broker/NAME, or .../port-PORT without --name, ~/.local/share/natsmesh/... without XDG_DATA_HOME; "+
		"a temporary one, removed on exit, with a random port and no --name)")
	fs.BoolVar(&cfg.NoJetStream, "no-jetstream", false, "disable JetStream")
	fs.StringVar(&cfg.ServerName, "name", "", "NATS server `name` (default: generated)")
	maxPayload := fs.Int("max-payload", 0, "largest message payload in `bytes` (default: nats-server's 1 MiB)")
	fs.StringVar(&cfg.Cluster.Listen, "cluster", "", "cluster route listener `address` (host:port)")
	fs.StringVar(&cfg.Cluster.Name, "cluster-name", "", "cluster `name` (default \""+broker.DefaultClusterName+"\" with --cluster)")
	fs.Var(&routes, "routes", "route `URLs` of other cluster servers (nats://host:port), comma-separated or repeated")
	fs.StringVar(&cfg.LeafNodes.Listen, "leafnodes", "", "leaf node listener `address` (host:port)")
	fs.Var(&remotes, "leaf-remotes", "leaf node `URLs` of one hub (its servers, tried in turn) to connect to as a leaf; several hubs need --nats-config")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "server certificate `file` (PEM) for client connections, and for routes and leaf nodes (verified both ways)")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "server key `file` (PEM)")
	fs.StringVar(&cfg.TLS.CAFile, "tls-ca", "", "CA `file` (PEM): clients must present a certificate it signed (mutual TLS); routes and leaf nodes verify peers against it")
	fs.DurationVar(&cfg.LameDuckDuration, "lame-duck", broker.DefaultLameDuckDuration, "how long shutdown spends closing clients gradually (negative: close them at once)")
	fs.TextVar(&logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	procs := fs.Int("procs", 0, "CPU `cores` the broker runs on at once (GOMAXPROCS; 0: every core, or the environment's GOMAXPROCS). One costs the least CPU per message on a small host it shares with its services; every core carries the most")
	deprecate(fs, "http", "monitor")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyConfigFile(fs, *config); err != nil {
		return err
	}
	if *procs < 0 {
		return fmt.Errorf("broker: --procs %d: want 0 or more", *procs)
	}
	if *procs > 0 {
		// Each message wakes the broker, and with idle cores Go also wakes
		// a thread to spin for work: on one core a 2-core host's broker
		// spent 17-27% less CPU a call (decision 184); one core also caps
		// what it can carry, so the default stays every core.
		runtime.GOMAXPROCS(*procs)
	}
	if *maxPayload < 0 || *maxPayload > 1<<30 {
		return fmt.Errorf("broker: --max-payload %d: want 0 to %d bytes", *maxPayload, 1<<30)
	}
	cfg.MaxPayload = int32(*maxPayload)
	cfg.Cluster.Routes, cfg.LeafNodes.Remotes = routes.Values, remotes.Values
	if cfg.ConfigFile != "" {
		// Leave what the file sets alone unless the flag was given.
		if !isSet(fs, "listen") {
			cfg.Listen = ""
		}
		if !isSet(fs, "monitor") {
			cfg.HTTP = ""
		}
		if !isSet(fs, "lame-duck") {
			cfg.LameDuckDuration = 0
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Logger = log.With("component", "broker")
	cfg.PersistentStore = true

	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	if err := b.Ready(30 * time.Second); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	ready := []any{"url", b.ClientURL()}
	if dir := b.Server().StoreDir(); b.Server().JetStreamEnabled() && dir != "" {
		ready = append(ready, "store", dir)
	}
	log.Info("natsmesh broker ready", ready...)
	if seed := b.SystemUserSeed(); seed != "" {
		log.Info("system account user for nats server commands", "nkey", seed, "example", "nats --server "+b.ClientURL()+" --nkey "+seed+" server list")
	}

	<-ctx.Done()
	log.Info("natsmesh broker shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.LameDuckDuration+10*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		return failure{err}
	}
	return nil
}
