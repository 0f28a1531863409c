package agent

import (
	"context"
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
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// Bind is a local port bound to one destination (see [Agent.BindHandler]).
type Bind struct {
	// Dest is the destination, SERVICE or SUBSET.SERVICE.
	Dest string
	// Addr is the listen address, "127.0.0.1:9191".
	Addr string
}

// SidecarConfig is a sidecar: the agent, how it connects, and its
// listeners. An empty listener address or "off" means no such listener.
type SidecarConfig struct {
	// Agent is the agent's configuration.
	Agent Config
	// Conn, when set, is the NATS connection to use (left open at
	// Shutdown); otherwise Start connects with Connect.
	Conn *nats.Conn
	// Connect says how to connect when Conn is nil. Its Name defaults to
	// "natsmesh-agent:<service>", its Logger to Agent.Logger.
	Connect ConnectConfig

	// HTTP is the outbound HTTP proxy (HTTP_PROXY or Host: <service>).
	HTTP string
	// GRPC is the outbound gRPC proxy (h2c, :authority = <service>).
	GRPC string
	// Binds are per-destination ports.
	Binds []Bind
	// Admin serves /healthz, /readyz (see [Sidecar.Readiness]), GET
	// /config, the endpoints of Agent.Admin and, with Profiles,
	// /debug/pprof/.
	Admin string
	// Profiles serves Go's profiles at the admin endpoint's
	// /debug/pprof/. Default off: a heap profile holds request headers.
	Profiles bool

	// Policy says where the mesh file comes from when Agent.Policies is
	// nil: "" (the default) watches the policies bucket over the
	// sidecar's connection (live.WatchBucket; until it holds a file, an
	// agent that authenticates refuses every call and an agent on an open
	// broker applies the built-in policy), a path watches that local file
	// (live.WatchFile; it must load, which Start checks before it
	// connects), and live.Off applies the built-in policy only, which
	// Start refuses on a connection that authenticates (ErrConfig) unless
	// Agent.BuiltinPolicy is set: a secured agent needs a mesh file. The admin endpoint serves what
	// applies on GET /config (live.Handler) unless Agent.Admin has a
	// handler of its own for it.
	Policy string
	// PolicyCache, with the bucket's watch (Policy ""), is the file the
	// last good mesh file is kept in, and started with when the store has
	// none or does not answer (live.SourceConfig.Cache). `natsmesh agent`
	// defaults it to $XDG_STATE_HOME/natsmesh/<service>/mesh.json.
	// Default: none.
	PolicyCache string
}

// Sidecar is an agent with its connection and listeners: what `natsmesh
// agent` runs beside a service, and what a program embedding a sidecar
// runs. It is the agent as the one part of a host (internal/host), whose
// lifecycle it has: NewSidecar validates and does no I/O; Start opens the
// listeners (a port in use is an error before anything connects), loads
// a local mesh file, connects, starts the agent and serves; Shutdown
// drains, and is safe during Start.
type Sidecar struct {
	cfg SidecarConfig
	h   *host.Host
	// a is the agent Start built, for the listeners' Serve (the host
	// calls them after it built the agent); others read it through h.
	a *Agent
}

// ErrNothingToDo is wrapped by NewSidecar's error for an agent with no
// upstream and every outbound listener off: it would serve nothing.
var ErrNothingToDo = errors.New("nothing to do: no upstream to serve and every outbound listener (HTTP proxy, gRPC proxy, binds) is off")

// NewSidecar validates cfg and returns its sidecar. It does no I/O: it
// neither listens, reads a file nor connects.
func NewSidecar(cfg SidecarConfig) (*Sidecar, error) {
	if err := cfg.Agent.Validate(); err != nil {
		return nil, err
	}
	s := &Sidecar{cfg: cfg}
	log := cfg.Agent.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, b := range cfg.Binds {
		if _, _, perr := wire.ParseHost(b.Dest, cfg.Agent.Domains); perr != nil {
			return nil, fmt.Errorf("%w: bind %q: %v", ErrConfig, b.Dest, wire.FromError(perr).Message)
		}
		if b.Addr == "" {
			return nil, fmt.Errorf("%w: bind %q has no address", ErrConfig, b.Dest)
		}
	}
	var listeners []host.Listener
	add := func(addr, purpose string, serve func(net.Listener) error) {
		if !admin.Off(addr) {
			listeners = append(listeners, host.Listener{Purpose: purpose, Addr: addr, Serve: serve})
		}
	}
	add(cfg.HTTP, "HTTP proxy", func(l net.Listener) error { return s.a.ServeHTTPProxy(l) })
	add(cfg.GRPC, "gRPC proxy", func(l net.Listener) error { return s.a.ServeGRPCProxy(l) })
	// A destination may have several bind ports (IPv4 and IPv6 loopback,
	// an old port kept beside a new one): the second is "bind DEST #2".
	binds := map[string]int{}
	for _, b := range cfg.Binds {
		purpose := "bind " + b.Dest
		if binds[b.Dest]++; binds[b.Dest] > 1 {
			purpose += fmt.Sprintf(" #%d", binds[b.Dest])
		}
		add(b.Addr, purpose, func(l net.Listener) error { return s.a.ServeBind(l, b.Dest) })
	}
	if len(listeners) == 0 && cfg.Agent.Upstream == "" {
		return nil, fmt.Errorf("%w: %w", ErrConfig, ErrNothingToDo)
	}
	cc := cfg.Connect
	if cc.Name == "" {
		cc.Name = "natsmesh-agent:" + cfg.Agent.Service
	}
	if cc.Logger == nil {
		cc.Logger = log
	}
	var err error
	s.h, err = host.New(host.Config{
		Parts: []host.Part{{Name: cfg.Agent.Service, Conn: cfg.Conn, Connect: cc, Listeners: listeners, Build: s.build}},
		Admin: cfg.Admin, AdminHandlers: cfg.Agent.Admin, Profiles: cfg.Profiles,
		Policy: host.Policy{Source: cfg.Agent.Policies, Path: cfg.Policy, Cache: cfg.PolicyCache, Builtin: cfg.Agent.BuiltinPolicy},
		Logger: log,
		Errors: host.Errors{Prefix: "agent", Config: func(err error) error { return fmt.Errorf("%w: %w", ErrConfig, err) }, Shutdown: ErrClosed},
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// build makes the agent on the connection the host made, with its policy
// source; its own admin handler serves GET /config too, as the sidecar's.
func (s *Sidecar) build(env host.Env) (host.Component, error) {
	ac := s.cfg.Agent
	ac.Policies = env.Policies
	if _, ok := ac.Admin["GET /config"]; !ok {
		handlers := maps.Clone(ac.Admin)
		if handlers == nil {
			handlers = map[string]http.Handler{}
		}
		handlers["GET /config"] = live.Handler(ac.Policies)
		ac.Admin = handlers
	}
	a, err := New(env.Conn, ac)
	if err != nil {
		return nil, err
	}
	s.a = a
	return a, nil
}

// Addr returns the address of the listener for purpose ("HTTP proxy",
// "gRPC proxy", "bind DEST" — "bind DEST #2" for a second port to DEST —,
// "admin"), or nil before Start opened it.
func (s *Sidecar) Addr(purpose string) net.Addr {
	if purpose == "admin" {
		return s.h.AdminAddr()
	}
	return s.h.Addr(s.cfg.Agent.Service, purpose)
}

// Start opens the listeners and the admin endpoint, loads a local mesh
// file, connects to NATS (waiting for the first connection, see Connect,
// unless SidecarConfig.Conn is set), starts the policy source and the
// agent, and serves every listener. It does not block once connected; a
// listener that fails later is reported on Err. When ctx ends first, it
// returns ctx's error. A second Start returns an error; one after
// Shutdown, or one that Shutdown interrupts, returns an error that wraps
// ErrClosed. A Start that fails closes what it opened.
func (s *Sidecar) Start(ctx context.Context) error { return s.h.Start(ctx) }

// Agent is the sidecar's agent, nil before Start succeeds.
func (s *Sidecar) Agent() *Agent {
	a, _ := s.h.Component(s.cfg.Agent.Service).(*Agent)
	return a
}

// Conn is the sidecar's NATS connection, nil before Start succeeds.
func (s *Sidecar) Conn() *nats.Conn { return s.h.Conn(s.cfg.Agent.Service) }

// Err reports a listener that stopped serving.
func (s *Sidecar) Err() <-chan error { return s.h.Err() }

// Readiness returns nil while the sidecar takes calls, and otherwise why
// not: what Start is doing, shutting down, or the agent's reason (see
// [Agent.Readiness]). /readyz answers the same.
func (s *Sidecar) Readiness() error { return s.h.Readiness() }

// Ready waits until the sidecar is ready (see Readiness), or returns why it
// is not after timeout, or an error that wraps ErrClosed once it has shut
// down.
func (s *Sidecar) Ready(timeout time.Duration) error { return s.h.Ready(timeout) }

// Shutdown shuts the sidecar down, in order: the agent stops taking calls
// and finishes those in flight (see [Agent.Shutdown]); the listeners
// close; the policy source the sidecar opened closes; the connection Start
// opened is drained (its last replies flushed, for up to 5 seconds more
// when ctx is over) and closed; last the admin endpoint, which answers
// /readyz "not ready" throughout. A Start under way is cancelled and
// waited for. It returns the errors of those steps, and nil when called
// again.
func (s *Sidecar) Shutdown(ctx context.Context) error { return s.h.Shutdown(ctx) }

// AdminHandler serves the agent's admin endpoint: /healthz (liveness),
// /readyz (ready while the agent's NATS connection is up and, when it
// serves a service, the instance is in its queue groups) and /debug/pprof/.
// The sidecar serves it on its admin listener; an in-process agent can
// mount it on a server of its own.
func (a *Agent) AdminHandler() http.Handler { return a.admin }

// Readiness returns nil while the agent takes calls, and otherwise why not:
// not started, shut down, no NATS connection, no mesh file yet (an agent
// that authenticates, see Config.Policies), or (with an inbound side) not
// serving because its service fails its health checks or the broker
// refuses its queue subscriptions (saying what to do about it).
func (a *Agent) Readiness() error {
	a.mu.Lock()
	started, closed := a.started, a.closed
	a.mu.Unlock()
	switch {
	case closed:
		return errors.New("shutting down")
	case !started:
		return errors.New("not started")
	}
	if !a.nc.IsConnected() {
		return errors.New("no connection to the NATS broker")
	}
	if a.failClosed && a.meshFile() == nil {
		return errors.New("no mesh file yet: the store has none or cannot be reached, and none is kept on disk (natsmesh policy apply)")
	}
	if a.HasInbound() && !a.Serving() {
		return fmt.Errorf("not serving: %s", a.in.lastHealthError())
	}
	return nil
}
