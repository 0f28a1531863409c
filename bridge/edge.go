package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/admin"
	"github.com/natsmesh/natsmesh/internal/host"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/policies/live"
)

// ConnectConfig says how the edge connects to NATS: the same type as
// agent.ConnectConfig, whose documentation lists its fields (URL, Name,
// Creds or NKey, TLSCA, TLSCert and TLSKey, Timeout, Logger, Options). The
// zero value connects to nats://127.0.0.1:4222 without authentication.
type ConnectConfig = natsconn.Config

// EdgeConfig is an edge gateway with its connection and listeners: what
// `natsmesh bridge` runs. An empty Admin address or "off" means no admin
// listener.
type EdgeConfig struct {
	// Gateway is the gateway's configuration. When Gateway.Conn is set the
	// edge uses that connection and leaves it open at Shutdown; otherwise
	// Start connects with Connect as the service Gateway.Name (replies
	// under its inbox prefix) and closes the connection at Shutdown.
	Gateway GatewayConfig
	// Connect says how to connect when Gateway.Conn is nil. Its Name
	// defaults to "natsmesh-bridge:<Gateway.Name>", its Logger to
	// Gateway.Logger.
	Connect ConnectConfig

	// Listen is the gateway's listener for outside clients, host:port
	// ("127.0.0.1:8080", ":443"). Required.
	Listen string
	// TLS, when set, serves the gateway's listener over TLS.
	TLS *tls.Config
	// Admin is the admin listener's address: /healthz, /readyz (see
	// [Edge.Readiness]), GET /config, the endpoints of Gateway.Admin and
	// AdminConn and, with Profiles, /debug/pprof/.
	Admin string
	// Profiles serves Go's profiles at the admin endpoint's
	// /debug/pprof/. Default off: a heap profile holds request headers.
	Profiles bool
	// AdminConn, when set, returns further admin endpoints that need the
	// NATS connection (`natsmesh bridge` mounts the mesh's dashboard at
	// /ui/ with it). Start calls it once connected; its error fails Start,
	// and so does a pattern that Gateway.Admin has too.
	AdminConn func(*nats.Conn) (map[string]http.Handler, error)

	// Policy says where the mesh file comes from when Gateway.Policies is
	// nil, as for an agent's sidecar: "" (the default) watches the
	// policies bucket over the edge's connection (live.WatchBucket;
	// until it holds a file, a gateway that authenticates refuses every
	// request and one on an open broker applies the built-in policy), a
	// path watches that local file (live.WatchFile; it must load, which
	// Start checks before it connects), and live.Off applies the built-in
	// policy only, which Start refuses on a connection that authenticates
	// (ErrInvalidConfig) unless Gateway.BuiltinPolicy is set. The admin
	// endpoint serves what applies on GET
	// /config (live.Handler) unless Gateway.Admin has a handler of its
	// own for it.
	Policy string
	// PolicyCache, with the bucket's watch (Policy ""), is the file the
	// last good mesh file is kept in, and started with when the store has
	// none or does not answer (live.SourceConfig.Cache). `natsmesh bridge`
	// defaults it to $XDG_STATE_HOME/natsmesh/<name>/mesh.json. Default:
	// none.
	PolicyCache string
}

// Edge is the edge gateway with its connection and listeners: what
// `natsmesh bridge` runs, and what a program embedding the edge runs. It
// is the gateway as the one part of a host (internal/host), whose
// lifecycle it has: NewEdge validates and does no I/O; Start opens the
// listeners (a port in use is an error before anything connects), loads a
// local mesh file, connects, starts the gateway and serves; Shutdown
// drains, and is safe during Start.
type Edge struct {
	cfg EdgeConfig
	h   *host.Host
	// g is the gateway Start built, for the listener's Serve (the host
	// calls it after it built the gateway); others read it through h.
	g *Gateway
}

// ErrShutdown is returned by a Start that Shutdown ended or preceded.
var ErrShutdown = errors.New("bridge: edge shut down")

// NewEdge validates cfg and returns its edge. It does no I/O: it neither
// listens, reads a file nor connects. Errors wrap ErrInvalidConfig.
func NewEdge(cfg EdgeConfig) (*Edge, error) {
	if err := cfg.Gateway.Validate(); err != nil {
		return nil, err
	}
	if cfg.Gateway.Name == "" {
		cfg.Gateway.Name = "bridge"
	}
	if admin.Off(cfg.Listen) {
		return nil, fmt.Errorf("bridge: no gateway listener address: %w", ErrInvalidConfig)
	}
	e := &Edge{cfg: cfg}
	log := cfg.Gateway.Logger
	if log == nil {
		log = slog.Default()
	}
	cc := cfg.Connect
	if cc.Name == "" {
		cc.Name = "natsmesh-bridge:" + cfg.Gateway.Name
	}
	if cc.Logger == nil {
		cc.Logger = log
	}
	var err error
	e.h, err = host.New(host.Config{
		Parts: []host.Part{{
			Name: cfg.Gateway.Name, Conn: cfg.Gateway.Conn, Connect: cc,
			Listeners: []host.Listener{{Purpose: "gateway", Addr: cfg.Listen, Serve: e.serve}},
			Build:     e.build,
			Admin:     cfg.AdminConn,
		}},
		Admin: cfg.Admin, AdminHandlers: cfg.Gateway.Admin, Profiles: cfg.Profiles,
		Policy: host.Policy{Source: cfg.Gateway.Policies, Path: cfg.Policy, Cache: cfg.PolicyCache, Builtin: cfg.Gateway.BuiltinPolicy},
		Logger: log,
		Errors: host.Errors{Prefix: "bridge", Config: func(err error) error { return fmt.Errorf("bridge: %w: %w", err, ErrInvalidConfig) }, Shutdown: ErrShutdown},
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// build makes the gateway on the connection the host made, with its policy
// source; its own admin handler serves GET /config too, as the edge's.
func (e *Edge) build(env host.Env) (host.Component, error) {
	gc := e.cfg.Gateway
	gc.Conn, gc.Policies = env.Conn, env.Policies
	if _, ok := gc.Admin["GET /config"]; !ok {
		handlers := maps.Clone(gc.Admin)
		if handlers == nil {
			handlers = map[string]http.Handler{}
		}
		handlers["GET /config"] = live.Handler(gc.Policies)
		gc.Admin = handlers
	}
	g, err := NewGateway(gc)
	if err != nil {
		return nil, err
	}
	e.g = g
	return g, nil
}

// serve serves the gateway on l until its Shutdown.
func (e *Edge) serve(l net.Listener) error {
	if err := e.g.Serve(l, e.cfg.TLS); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Addr is the address of the gateway's listener, nil before Start opened
// it.
func (e *Edge) Addr() net.Addr { return e.h.Addr(e.cfg.Gateway.Name, "gateway") }

// AdminAddr is the address of the admin listener, nil before Start opened
// it or without one.
func (e *Edge) AdminAddr() net.Addr { return e.h.AdminAddr() }

// Start opens the listeners, loads a local mesh file, connects to NATS
// (waiting for the first connection, see [ConnectConfig], unless
// Gateway.Conn is set), starts the policy source and the gateway, and
// serves both listeners. It does not block once connected; a listener that
// fails later is reported on Err. When ctx ends while it waits for NATS,
// it returns ctx.Err(). A second Start returns an error; one after
// Shutdown, or one that Shutdown interrupts (its wait for NATS ends),
// returns an error matching ErrShutdown and leaves nothing open. A Start
// that fails closes what it opened.
func (e *Edge) Start(ctx context.Context) error { return e.h.Start(ctx) }

// Gateway is the edge's gateway, nil before Start succeeds.
func (e *Edge) Gateway() *Gateway {
	g, _ := e.h.Component(e.cfg.Gateway.Name).(*Gateway)
	return g
}

// Conn is the edge's NATS connection, nil before Start succeeds.
func (e *Edge) Conn() *nats.Conn { return e.h.Conn(e.cfg.Gateway.Name) }

// Err reports a listener that stopped serving.
func (e *Edge) Err() <-chan error { return e.h.Err() }

// Readiness returns nil while the edge takes requests, and otherwise why
// not: what Start is doing, shutting down, or the gateway's reason (see
// [Gateway.Readiness]). /readyz answers the same.
func (e *Edge) Readiness() error { return e.h.Readiness() }

// Ready waits until the edge is ready (see Readiness), or returns why it is
// not after timeout, or an error matching ErrShutdown once it has shut
// down.
func (e *Edge) Ready(timeout time.Duration) error { return e.h.Ready(timeout) }

// Shutdown drains the edge, in order: the gateway stops accepting and
// finishes the requests in flight (each bounded by the gateway's Timeout;
// those still running when ctx ends are cut off) and stops answering
// discovery; the policy source the edge opened closes; the connection Start
// opened is drained (its last publications flushed, for up to 5 seconds
// more when ctx is over) and closed; last the admin endpoint, which
// answers /readyz "not ready" throughout, closes. It returns the errors of
// those steps, and nil when called again. A Start still connecting is
// cancelled and waited for: it closes what it opened and returns an error.
func (e *Edge) Shutdown(ctx context.Context) error { return e.h.Shutdown(ctx) }
