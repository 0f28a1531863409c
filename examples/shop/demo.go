package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/meshstat/dashboard"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// DashboardPath is where the demo serves the dashboard on its admin
// listener, as the edge bridge does on its admin port; / redirects to it.
const DashboardPath = "/ui/"

// DemoConfig says where the whole demo (`natsmesh demo`) listens. Every
// address is "host:port"; port 0 picks a free one (see Demo.Addresses).
type DemoConfig struct {
	// Listen is the broker's NATS client listener. Default
	// broker.DefaultListen (127.0.0.1:4222).
	Listen string
	// Monitor is the broker's monitoring listener. Default
	// broker.DefaultHTTP (127.0.0.1:8222); "off" disables it.
	Monitor string
	// Gateway is the edge gateway's listener. Default 127.0.0.1:8080;
	// "off" disables it (and the background load).
	Gateway string
	// Proxy is the web agent's outbound HTTP proxy listener. Default
	// 127.0.0.1:15001; "off" disables it.
	Proxy string
	// Admin serves the dashboard at DashboardPath. Default 127.0.0.1:15091
	// (the bridge's admin port); "off" disables it.
	Admin string
	// Load is the background requests per second sent through the
	// gateway (see Load), so the dashboard and natsmesh stat show live
	// numbers. 0: none.
	Load int
	// Logger receives every part's log, each with a "component"
	// attribute. Default: discard.
	Logger *slog.Logger
}

// Addresses are the addresses a running Demo actually listens on; ""
// for a part that is off.
type Addresses struct {
	// Broker is the broker's NATS client URL (nats://host:port).
	Broker string
	// Monitor is the broker's monitoring listener (host:port).
	Monitor string
	// Gateway and Proxy are the edge gateway's and the web agent's proxy
	// listeners (host:port).
	Gateway, Proxy string
	// Dashboard is the dashboard's URL (http://host:port/ui/).
	Dashboard string
}

// Demo is the running demo of RunDemo: one embedded broker with NATS
// accounts generated from MeshFile, the shop (Start) on it with the mesh
// file live in the policies bucket, the dashboard, and the background load.
type Demo struct {
	// Addresses are where the parts listen.
	Addresses Addresses
	// AccountsDir holds the generated accounts: the broker's config and one
	// NKey seed file per part (accounts.SeedFile). Shutdown removes it.
	AccountsDir string
	// AdminSeed is the admin user's seed file in AccountsDir: the identity
	// that may use discovery ($SRV.*) and the policies bucket, as
	// `natsmesh stat --nkey` and the nats CLI need it.
	AdminSeed string

	log      *slog.Logger
	broker   *broker.Broker
	policies *live.Source
	conns    []*nats.Conn
	mesh     *Mesh
	admin    *http.Server
	stopLoad context.CancelFunc
	loading  sync.WaitGroup
	once     sync.Once
	err      error
}

// RunDemo starts the whole demo and returns once every part serves and
// the load (if any) runs. ctx bounds the start only. On error it stops
// what it started. Stop the demo with Shutdown.
func RunDemo(ctx context.Context, cfg DemoConfig) (_ *Demo, err error) {
	if cfg.Listen == "" {
		cfg.Listen = broker.DefaultListen
	}
	if cfg.Monitor == "" {
		cfg.Monitor = broker.DefaultHTTP
	}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:15091"
	}
	if cfg.Load < 0 {
		return nil, fmt.Errorf("shop: DemoConfig.Load %d is negative", cfg.Load)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Demo{log: log, stopLoad: func() {}}
	defer func() {
		if err != nil {
			d.Shutdown(context.Background())
		}
	}()

	// Auth on, as in production: the accounts come from the demo's mesh
	// file, and every part connects with its own NKey.
	file, err := MeshFile()
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	if d.AccountsDir, err = os.MkdirTemp("", "natsmesh-demo-"); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	if err := accounts.Generate(file.AccountsSpec(), d.AccountsDir); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	d.AdminSeed = accounts.SeedFile(d.AccountsDir, accounts.DefaultAdmin)
	b, err := broker.New(broker.Config{Listen: cfg.Listen, HTTP: cfg.Monitor,
		ConfigFile: accounts.ConfigFile(d.AccountsDir), Logger: log.With("component", "broker")})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Shutdown(context.Background())
		return nil, err
	}
	d.broker = b
	if err := b.Ready(30 * time.Second); err != nil {
		return nil, err
	}
	d.Addresses.Broker = b.ClientURL()
	if a := b.Server().MonitorAddr(); a != nil {
		d.Addresses.Monitor = a.String()
	}

	// The policies bucket is written and watched as the admin, the one
	// identity the generated accounts let use JetStream's API.
	pnc, err := d.adminConn("natsmesh-demo:policies")
	if err != nil {
		return nil, err
	}
	if d.policies, err = Policies(ctx, pnc, log.With("component", "demo")); err != nil {
		return nil, err
	}
	if d.mesh, err = Start(Config{
		Policies: d.policies,
		Connect: func(service string) (*nats.Conn, error) {
			return agent.Connect(ctx, service, agent.ConnectConfig{
				URL: b.ClientURL(), Name: "natsmesh-demo:" + service, NKey: accounts.SeedFile(d.AccountsDir, service),
				Timeout: 10 * time.Second, Logger: log.With("component", service),
			})
		},
		Gateway: cfg.Gateway,
		Proxy:   cfg.Proxy,
		Logger:  log.With("component", "demo"),
	}); err != nil {
		return nil, err
	}
	d.Addresses.Gateway, d.Addresses.Proxy = d.mesh.GatewayAddr, d.mesh.ProxyAddr

	if cfg.Admin != "off" {
		if err := d.serveDashboard(cfg.Admin); err != nil {
			return nil, fmt.Errorf("shop: dashboard: %w", err)
		}
	}
	if cfg.Load > 0 && d.Addresses.Gateway != "" {
		// The load lives until Shutdown, not until ctx ends.
		lctx, cancel := context.WithCancel(context.Background())
		d.stopLoad = cancel
		d.loading.Add(1)
		go func() {
			defer d.loading.Done()
			Load(lctx, "http://"+d.Addresses.Gateway, cfg.Load)
		}()
	}
	return d, nil
}

// adminConn opens an in-process connection to the demo's broker as the
// admin, closed by Shutdown.
func (d *Demo) adminConn(name string) (*nats.Conn, error) {
	nk, err := nats.NkeyOptionFromSeed(d.AdminSeed)
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	nc, err := d.broker.InProcessConn(nats.Name(name), nk, nats.CustomInboxPrefix(wire.InboxPrefix(accounts.DefaultAdmin)))
	if err != nil {
		return nil, err
	}
	d.conns = append(d.conns, nc)
	return nc, nil
}

// serveDashboard serves the dashboard of the demo's mesh at addr, reading
// the mesh's counters as the admin (only the admin may send discovery
// requests).
func (d *Demo) serveDashboard(addr string) error {
	nc, err := d.adminConn("natsmesh-demo:ui")
	if err != nil {
		return err
	}
	h, err := dashboard.Handler(dashboard.Config{Sampler: meshstat.NewSampler(nc, meshstat.GatherOptions{})})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+DashboardPath, http.StripPrefix(DashboardPath[:len(DashboardPath)-1], h))
	mux.Handle("GET /{$}", http.RedirectHandler(DashboardPath, http.StatusFound))
	d.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.Addresses.Dashboard = "http://" + ln.Addr().String() + DashboardPath
	go func() {
		if err := d.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("shop: dashboard stopped", "err", err)
		}
	}()
	return nil
}

// Shutdown stops the demo, outside in: the load, the shop (Mesh.Shutdown:
// calls let in are answered), the dashboard, the policies watch, the
// broker; then it removes AccountsDir. It returns the shop's error, if
// any. Safe to call more than once; later calls return the first's error.
func (d *Demo) Shutdown(ctx context.Context) error {
	d.once.Do(func() {
		d.stopLoad()
		d.loading.Wait()
		if d.mesh != nil {
			d.err = d.mesh.Shutdown(ctx)
		}
		if d.admin != nil {
			d.admin.Close()
		}
		if d.policies != nil {
			d.policies.Close()
		}
		for _, nc := range d.conns {
			nc.Close()
		}
		if d.broker != nil {
			d.broker.Shutdown(context.Background())
		}
		if d.AccountsDir != "" {
			os.RemoveAll(d.AccountsDir)
		}
	})
	return d.err
}
