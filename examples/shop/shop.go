package shop

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// Config says where the demo's parts connect and listen.
type Config struct {
	// Connect opens the NATS connection of one service (its name is the
	// caller identity; use wire.InboxPrefix(name) for its replies).
	// Required.
	Connect func(service string) (*nats.Conn, error)
	// Gateway is the edge gateway's listen address. Default 127.0.0.1:8080;
	// "off" disables it.
	Gateway string
	// Proxy is the web agent's outbound HTTP proxy address. Default
	// 127.0.0.1:15001; "off" disables it.
	Proxy string
	// Policies is the live mesh file the agents and the gateway apply
	// (allow lists, routes, splits, limits); the demo loads MeshFile into
	// it (see Policies). Nil: the built-in policy, and the broker alone
	// decides who may call whom; only on an open broker, as agents and
	// gateways that authenticate refuse to start without a mesh file
	// (agent.Config.BuiltinPolicy).
	Policies *live.Source
	// Logger for the agents and gateway. Default slog.Default().
	Logger *slog.Logger
}

//go:embed mesh.yaml
var meshYAML []byte

// MeshFile is the demo's mesh file, examples/shop/mesh.yaml: its services,
// who may call whom, and their policies. `natsmesh demo` generates the
// demo's NATS accounts from it.
func MeshFile() (*policies.File, error) { return policies.Parse("examples/shop/mesh.yaml", meshYAML) }

// Mesh is the running demo.
type Mesh struct {
	// GatewayAddr and ProxyAddr are the addresses actually listened on.
	GatewayAddr, ProxyAddr string

	agents  []*agent.Agent
	gateway *bridge.Gateway
	servers []*http.Server // the services' own
	clock   micro.Service
	conns   []*nats.Conn
	tels    []*telemetry.Telemetry // the agents' and the gateway's
	log     *slog.Logger
	once    sync.Once
}

// Start runs every part of the demo and returns once all of them serve.
func Start(cfg Config) (_ *Mesh, err error) {
	if cfg.Connect == nil {
		return nil, errors.New("shop: Config.Connect is required")
	}
	if cfg.Gateway == "" {
		cfg.Gateway = "127.0.0.1:8080"
	}
	if cfg.Proxy == "" {
		cfg.Proxy = "127.0.0.1:15001"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mesh{log: cfg.Logger}
	defer func() {
		if err != nil {
			m.Shutdown(context.Background())
		}
	}()
	connect := func(service string) (*nats.Conn, error) {
		nc, err := cfg.Connect(service)
		if err != nil {
			return nil, fmt.Errorf("shop: connecting %s: %w", service, err)
		}
		m.conns = append(m.conns, nc)
		return nc, nil
	}
	startAgent := func(ac agent.Config, setup func(*agent.Agent) error) (*agent.Agent, error) {
		nc, err := connect(ac.Service)
		if err != nil {
			return nil, err
		}
		ac.Logger = cfg.Logger
		ac.Policies = cfg.Policies
		// Metrics and the per-edge counters `natsmesh stat` and the
		// dashboard read, as `natsmesh agent` records them.
		tel, err := telemetry.New(telemetry.Config{Service: ac.Service})
		if err != nil {
			return nil, err
		}
		m.tels = append(m.tels, tel)
		ac.Telemetry = tel
		a, err := agent.New(nc, ac)
		if err != nil {
			return nil, err
		}
		m.agents = append(m.agents, a)
		if setup != nil {
			if err := setup(a); err != nil {
				return nil, err
			}
		}
		if err := a.Start(context.Background()); err != nil {
			return nil, err
		}
		return a, a.Ready(10 * time.Second)
	}

	// inventory: two in-process instances, subsets v1 and v2.
	for _, subset := range []string{"v1", "v2"} {
		h := Inventory(subset)
		if _, err := startAgent(agent.Config{Service: "inventory", Subset: subset, Version: map[string]string{"v1": "1.4.0", "v2": "2.0.0-beta.1"}[subset]},
			func(a *agent.Agent) error { return a.Handle(h) }); err != nil {
			return nil, err
		}
	}

	// orders: a real HTTP server on loopback behind a sidecar-style agent.
	// Its own calls to inventory go out through the same agent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The agent's Transport works once the agent exists; the server serves
	// before the agent starts and health-checks it.
	if _, err := startAgent(agent.Config{Service: "orders", Version: "1.0.0", Upstream: "http://" + l.Addr().String(),
		Health: agent.HealthConfig{Path: "/healthz", Interval: time.Second}},
		func(a *agent.Agent) error {
			m.serve(l, Orders(&http.Client{Transport: a.Transport(), Timeout: 10 * time.Second}))
			return nil
		}); err != nil {
		l.Close()
		return nil, err
	}

	// clock: a NATS-native micro service.
	nc, err := connect("clock")
	if err != nil {
		return nil, err
	}
	// It serves its mesh subjects itself, in its queue group: any call to
	// clock, whatever its caller, method and path (the gateway sends HTTP
	// POST /time, whose body is the time zone).
	subjects, queues := wire.ServiceSubjects("clock", "")
	m.clock, err = micro.AddService(nc, micro.Config{
		Name: "clock", Version: "1.0.0", Description: "NATS-native time service",
		Endpoint: &micro.EndpointConfig{Subject: subjects[0], QueueGroup: queues[0], Handler: micro.HandlerFunc(clock)},
	})
	if err != nil {
		return nil, err
	}

	// web: outbound only, for curl.
	web, err := startAgent(agent.Config{Service: "web"}, nil)
	if err != nil {
		return nil, err
	}
	if cfg.Proxy != "off" {
		l, err := net.Listen("tcp", cfg.Proxy)
		if err != nil {
			return nil, fmt.Errorf("shop: proxy: %w", err)
		}
		m.ProxyAddr = l.Addr().String()
		m.goServe("proxy", func() error { return web.ServeHTTPProxy(l) })
	}

	// The edge gateway.
	if cfg.Gateway != "off" {
		nc, err := connect("gateway")
		if err != nil {
			return nil, err
		}
		var routes []bridge.Route
		for _, s := range []string{"/orders=orders", "/stock=inventory", "/time=clock"} {
			r, err := bridge.ParseRoute(s)
			if err != nil {
				return nil, err
			}
			routes = append(routes, r)
		}
		tel, err := telemetry.New(telemetry.Config{Service: "gateway"})
		if err != nil {
			return nil, err
		}
		m.tels = append(m.tels, tel)
		g, err := bridge.NewGateway(bridge.GatewayConfig{Conn: nc, Name: "gateway", Routes: routes, Policies: cfg.Policies, Telemetry: tel, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		m.gateway = g
		if err := g.Start(context.Background()); err != nil { // discoverable: natsmesh stat, the dashboard
			return nil, err
		}
		l, err := net.Listen("tcp", cfg.Gateway)
		if err != nil {
			return nil, fmt.Errorf("shop: gateway: %w", err)
		}
		m.GatewayAddr = l.Addr().String()
		m.goServe("gateway", func() error { return g.Serve(l, nil) })
	}
	return m, nil
}

func (m *Mesh) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	m.servers = append(m.servers, srv)
	m.goServe("service", func() error { return srv.Serve(l) })
}

// goServe runs serve in the background and logs how it failed, unless it
// stopped for Shutdown.
func (m *Mesh) goServe(part string, serve func() error) {
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("shop: serving stopped", "part", part, "err", err)
		}
	}()
}

// Shutdown stops every part, outside in: the gateway first (it stops
// taking requests and finishes those in flight), then the agents drain, then
// the services' own servers, so no call that was let in is lost; last the
// telemetry of the agents and the gateway flushes its last spans and
// stops (its OTLP exporter's goroutines with it).
func (m *Mesh) Shutdown(ctx context.Context) error {
	var errs []error
	m.once.Do(func() {
		if m.gateway != nil {
			errs = append(errs, m.gateway.Shutdown(ctx))
		}
		for i := len(m.agents) - 1; i >= 0; i-- {
			errs = append(errs, m.agents[i].Shutdown(ctx))
		}
		if m.clock != nil {
			errs = append(errs, m.clock.Stop())
		}
		for _, s := range m.servers {
			errs = append(errs, s.Shutdown(ctx))
		}
		for _, tel := range m.tels {
			errs = append(errs, tel.Shutdown(ctx))
		}
		for _, nc := range m.conns {
			nc.Close()
		}
	})
	return errors.Join(errs...)
}

// Inventory serves GET /stock/{sku}: how many of sku are in stock, from the
// instance of subset.
func Inventory(subset string) http.Handler {
	stock := map[string]int{"apple": 12, "pear": 3, "plum": 0}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		n, ok := stock[sku]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown sku " + sku})
			return
		}
		caller, _ := agent.CallerFrom(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{"sku": sku, "count": n, "served_by": "inventory/" + subset, "caller": caller})
	})
	return mux
}

// Orders serves POST /orders {"sku": "apple", "qty": 2}: it checks stock
// with the inventory service through inventory's mesh client, and GET
// /healthz.
func Orders(inventory *http.Client) http.Handler {
	var next atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var order struct {
			SKU string `json:"sku"`
			Qty int    `json:"qty"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&order); err != nil || order.SKU == "" || order.Qty <= 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"sku": "apple", "qty": 2}`})
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://inventory/stock/"+url.PathEscape(order.SKU), nil)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		req.Header.Set("Traceparent", r.Header.Get("Traceparent"))
		resp, err := inventory.Do(req)
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		defer resp.Body.Close()
		var stock struct {
			Count    int    `json:"count"`
			ServedBy string `json:"served_by"`
			Error    string `json:"error"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&stock) != nil {
			writeJSON(w, resp.StatusCode, map[string]string{"error": "inventory: " + resp.Status + " " + stock.Error + resp.Header.Get(wire.HeaderError)})
			return
		}
		if stock.Count < order.Qty {
			writeJSON(w, http.StatusConflict, map[string]any{"error": fmt.Sprintf("only %d %s in stock", stock.Count, order.SKU), "stock_from": stock.ServedBy})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": next.Add(1), "sku": order.SKU, "qty": order.Qty, "stock_from": stock.ServedBy})
	})
	return mux
}

func clock(req micro.Request) {
	// A call always has a reply subject in its caller's pair inbox. A
	// message without one is no call: a service's key can have JetStream
	// (the policy store's direct get) drop one on any subject of its
	// account, so a NATS-native service of a mesh does nothing for it
	// (docs/security.md, "The policy store").
	if req.Reply() == "" {
		return
	}
	tz := strings.TrimSpace(string(req.Data()))
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			req.Error("400", "unknown time zone "+tz, nil)
			return
		}
		loc = l
	}
	req.Respond([]byte(time.Now().In(loc).Format(time.RFC3339) + "\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Policies applies MeshFile to the policies bucket over nc (creating the
// bucket) and returns a Source watching it, so that `natsmesh policy
// apply` of a changed file reaches the running demo within a second.
// Close the Source after the mesh.
func Policies(ctx context.Context, nc *nats.Conn, log *slog.Logger) (*live.Source, error) {
	f, err := MeshFile()
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	store, err := live.OpenStore(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	if _, err := store.Apply(ctx, f); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	return live.WatchKV(ctx, nc, live.SourceConfig{Logger: log})
}
