package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/examples/shop"
	"github.com/natsmesh/natsmesh/wire"
)

var demoCommand = command{
	name:    "demo",
	summary: "run a whole demo mesh on the embedded broker (services, agents, gateway)",
	run:     runDemo,
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[flags]",
		"Runs a small shop on one embedded broker with authentication (NATS accounts\n"+
			"generated from examples/shop/mesh.yaml, one NKey per part): inventory (two in-process\n"+
			"instances, subsets v1 and v2), orders (an HTTP server behind a sidecar-style\n"+
			"agent, calling inventory through the mesh), clock (a NATS-native micro\n"+
			"service), an outbound proxy for curl, and the edge gateway. Prints what to\n"+
			"try, and runs until SIGINT or SIGTERM.", stderr)
	var cfg shop.DemoConfig
	var logLevel slog.Level
	fs.StringVar(&cfg.Listen, "listen", broker.DefaultListen, "broker NATS client listener `address`")
	fs.StringVar(&cfg.Monitor, "monitor", broker.DefaultHTTP, "broker monitoring `address`, or \"off\"")
	fs.StringVar(&cfg.Gateway, "gateway", "127.0.0.1:8080", "edge gateway listener `address`")
	fs.StringVar(&cfg.Proxy, "proxy", "127.0.0.1:15001", "outbound HTTP proxy listener `address` of the web agent")
	fs.StringVar(&cfg.Admin, "admin", DefaultBridgeAdmin, "admin listener `address`, serving the dashboard at /ui/, or \"off\"")
	fs.IntVar(&cfg.Load, "load", 4, "background `requests` per second through the gateway, so the dashboard and natsmesh stat show live numbers (0: none)")
	fs.TextVar(&logLevel, "log-level", slog.LevelWarn, "log `level`: debug, info, warn or error")
	deprecate(fs, "http", "monitor")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	d, err := shop.RunDemo(ctx, cfg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer d.Shutdown(context.Background())
	prog := program()
	a := d.Addresses
	g, p, ui, monitor := a.Gateway, a.Proxy, a.Dashboard, a.Monitor
	if ui == "" {
		ui = "off (--admin off)"
	}
	if monitor == "" {
		monitor = "off"
	}
	fmt.Fprintf(stdout, `natsmesh demo: a mesh on the embedded broker %s, with authentication:
the accounts of examples/shop/mesh.yaml are in %s (removed on exit),
and every part connects with its own NKey.

Through the edge gateway (outside HTTP clients):
  curl -s http://%s/stock/apple
  curl -s http://%s/orders -d '{"sku":"apple","qty":2}'
  curl -s http://%s/orders -d '{"sku":"plum","qty":1}'
  curl -s http://%s/time -d Europe/Paris
  curl -s -i http://%s/orders      # 403, Mesh-Error: forbidden (the gateway may only POST)

Policies (examples/shop/mesh.yaml, live in the policies bucket; as the admin):
  curl -s http://%s/stock/apple -H 'x-beta: 1'   # the beta route: always inventory/v2
  %s policy get --nats %s --nkey %s
  %s policy apply -f examples/shop/mesh.yaml --nats %s --nkey %s   # edit the split: live within a second

Through the web agent's outbound proxy (services call each other by name):
  curl -s -x http://%s http://inventory/stock/pear
  curl -s -i -x http://%s http://v3.inventory/   # 503, Mesh-Error: no-responders
  curl -s -i -x http://%s http://nobody/         # 403, Mesh-Error: egress-denied (not in the mesh file: outside the mesh)
  curl -s -i -x http://%s http://example.com/    # 403, Mesh-Error: egress-denied (egress.mode: registry_only)

Live golden metrics (a gentle load of %d requests/s runs through the gateway):
  %s   # the dashboard: the service graph, live
  %s stat --watch --nats %s --nkey %s

Discovery and monitoring:
  nats --server %s --nkey %s --inbox-prefix %s micro ls   # the nats CLI, as the admin
  curl -s http://%s/connz        # the broker's monitoring

Ctrl-C stops the demo.
`, a.Broker, d.AccountsDir, g, g, g, g, g, g, prog, a.Broker, d.AdminSeed, prog, a.Broker, d.AdminSeed,
		p, p, p, p, cfg.Load, ui, prog, a.Broker, d.AdminSeed,
		a.Broker, d.AdminSeed, wire.PairInbox(accounts.DefaultAdmin, wire.PeerSRV), monitor)
	<-ctx.Done()
	fmt.Fprintln(stdout, "natsmesh demo: stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		return failure{err}
	}
	return nil
}
