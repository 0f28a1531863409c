package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/agent"
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
	var cfg broker.Config
	var logLevel slog.Level
	fs.StringVar(&cfg.Listen, "listen", broker.DefaultListen, "broker NATS client listener `address`")
	fs.StringVar(&cfg.HTTP, "monitor", broker.DefaultHTTP, "broker monitoring `address`, or \"off\"")
	gateway := fs.String("gateway", "127.0.0.1:8080", "edge gateway listener `address`")
	proxy := fs.String("proxy", "127.0.0.1:15001", "outbound HTTP proxy listener `address` of the web agent")
	adminAddr := fs.String("admin", DefaultBridgeAdmin, "admin listener `address`, serving the dashboard at /ui/, or \"off\"")
	rate := fs.Int("load", 4, "background `requests` per second through the gateway, so the dashboard and natsmesh stat show live numbers (0: none)")
	fs.TextVar(&logLevel, "log-level", slog.LevelWarn, "log `level`: debug, info, warn or error")
	deprecate(fs, "http", "monitor")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))

	// Auth on, as in production: the accounts come from the demo's mesh
	// file, and every part connects with its own NKey.
	file, err := shop.MeshFile()
	if err != nil {
		return failure{err}
	}
	dir, err := os.MkdirTemp("", "natsmesh-demo-")
	if err != nil {
		return failure{err}
	}
	defer os.RemoveAll(dir)
	if err := accounts.Generate(file.AccountsSpec(), dir); err != nil {
		return failure{err}
	}
	cfg.ConfigFile = accounts.ConfigFile(dir)
	cfg.Logger = log.With("component", "broker")
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Shutdown(context.Background())
		return err
	}
	defer b.Shutdown(context.Background())
	if err := b.Ready(30 * time.Second); err != nil {
		return err
	}
	// The policies bucket is written and watched as the admin, the one
	// identity the generated accounts let use JetStream's API.
	adminKey, err := nats.NkeyOptionFromSeed(accounts.SeedFile(dir, accounts.DefaultAdmin))
	if err != nil {
		return failure{err}
	}
	pnc, err := b.InProcessConn(nats.Name("natsmesh-demo:policies"), adminKey, nats.CustomInboxPrefix(wire.InboxPrefix(accounts.DefaultAdmin)))
	if err != nil {
		return err
	}
	defer pnc.Close()
	src, err := shop.Policies(ctx, pnc, log.With("component", "demo"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer src.Close()
	mesh, err := shop.Start(shop.Config{
		Policies: src,
		Connect: func(service string) (*nats.Conn, error) {
			return agent.Connect(ctx, service, agent.ConnectConfig{
				URL: b.ClientURL(), Name: "natsmesh-demo:" + service, NKey: accounts.SeedFile(dir, service),
				Timeout: 10 * time.Second, Logger: log.With("component", service),
			})
		},
		Gateway: *gateway,
		Proxy:   *proxy,
		Logger:  log.With("component", "demo"),
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	g, p := mesh.GatewayAddr, mesh.ProxyAddr
	ui := "off (--admin off)"
	if *adminAddr != "off" {
		addr, stop, err := serveDashboard(b, accounts.SeedFile(dir, accounts.DefaultAdmin), *adminAddr)
		if err != nil {
			mesh.Shutdown(context.Background())
			return fmt.Errorf("demo: dashboard: %w", err)
		}
		defer stop()
		ui = "http://" + addr + uiMount
	}
	if *rate > 0 && g != "" {
		go demoLoad(ctx, g, *rate)
	}
	admin := accounts.SeedFile(dir, accounts.DefaultAdmin)
	fmt.Fprintf(stdout, `natsmesh demo: a mesh on the embedded broker %s, with authentication:
the accounts of examples/shop/mesh.yaml are in %s (removed on exit),
and every part connects with its own NKey.

Through the edge gateway (outside HTTP clients):
  curl -s http://%s/stock/apple
  curl -s http://%s/orders -d '{"sku":"apple","qty":2}'
  curl -s http://%s/orders -d '{"sku":"plum","qty":1}'
  curl -s http://%s/time -d Europe/Paris
  curl -s -i http://%s/orders      # 403, Mesh-Error: forbidden (the gateway may only POST)

Policies (examples/shop/mesh.yaml, live in the policies bucket):
  curl -s http://%s/stock/apple -H 'x-beta: 1'   # the beta route: always inventory/v2
  natsmesh policy apply -f examples/shop/mesh.yaml   # edit the split: live within a second

Through the web agent's outbound proxy (services call each other by name):
  curl -s -x http://%s http://inventory/stock/pear
  curl -s -i -x http://%s http://v3.inventory/   # 503, Mesh-Error: no-responders
  curl -s -i -x http://%s http://nobody/         # 403, Mesh-Error: forbidden (not in the mesh file)

Live golden metrics (a gentle load of %d requests/s runs through the gateway):
  %s   # the dashboard: the service graph, live
  natsmesh stat --watch --nats %s --nkey %s

Discovery and monitoring:
  nats --server %s --nkey %s --inbox-prefix %s micro ls   # the nats CLI, as the admin
  curl -s http://%s/connz        # the broker's monitoring

Ctrl-C stops the demo.
`, b.ClientURL(), dir, g, g, g, g, g, g, p, p, p, *rate, ui, b.ClientURL(), admin,
		b.ClientURL(), admin, wire.InboxPrefix(accounts.DefaultAdmin), cfg.HTTP)
	<-ctx.Done()
	fmt.Fprintln(stdout, "natsmesh demo: stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mesh.Shutdown(sctx); err != nil {
		return failure{err}
	}
	return nil
}

// serveDashboard serves the dashboard at addr for the demo's mesh, over
// an in-process connection as the admin (NKey seed in the file seed).
func serveDashboard(b *broker.Broker, seed, addr string) (string, func(), error) {
	nk, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		return "", nil, err
	}
	nc, err := b.InProcessConn(nats.Name("natsmesh-demo:ui"), nk, nats.CustomInboxPrefix(wire.InboxPrefix(accounts.DefaultAdmin)))
	if err != nil {
		return "", nil, err
	}
	h, err := dashboardHandler(nc)
	if err != nil {
		nc.Close()
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		nc.Close()
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+uiMount, h)
	mux.Handle("GET /{$}", http.RedirectHandler(uiMount, http.StatusFound))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close(); nc.Close() }, nil
}

// demoLoad sends rate requests per second through the gateway, a mix of
// stock look-ups, orders (which call inventory through the mesh) and the
// clock, until ctx ends.
func demoLoad(ctx context.Context, gateway string, rate int) {
	calls := []struct{ method, path, body string }{
		{"GET", "/stock/apple", ""},
		{"POST", "/orders", `{"sku":"apple","qty":1}`},
		{"GET", "/stock/pear", ""},
		{"POST", "/orders", `{"sku":"plum","qty":1}`},
		{"POST", "/time", "Europe/Paris"},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := calls[i%len(calls)]
		req, err := http.NewRequestWithContext(ctx, c.method, "http://"+gateway+c.path, strings.NewReader(c.body))
		if err != nil {
			continue
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}
