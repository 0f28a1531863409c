package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/admin"
	"github.com/natsmesh/natsmesh/internal/natsconn"
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
	// Conn, when set, is the NATS connection to use; otherwise Start
	// connects with Connect.
	Conn *nats.Conn
	// Connect says how to connect when Conn is nil.
	Connect ConnectConfig

	// HTTP is the outbound HTTP proxy (HTTP_PROXY or Host: <service>).
	HTTP string
	// GRPC is the outbound gRPC proxy (h2c, :authority = <service>).
	GRPC string
	// Binds are per-destination ports.
	Binds []Bind
	// Admin serves /healthz, /readyz, /debug/pprof/ and the agent's further
	// admin endpoints (see [Agent.AdminHandler]).
	Admin string

	// Policy says where the mesh file comes from when Agent.Policies is
	// nil: "" (the default) watches the policies bucket over the
	// sidecar's connection (live.WatchBucket; until it holds a file, an
	// agent that authenticates refuses every call and an agent on an open
	// broker applies the built-in policy), a path watches that local file
	// (live.WatchFile; it must load at NewSidecar), and live.Off applies
	// the built-in policy only, which Start refuses on a connection that
	// authenticates (ErrConfig): a secured agent needs a mesh file. The
	// admin endpoint serves what applies on GET /config (live.Handler)
	// unless Agent.Admin has a handler of its own for it.
	Policy string
	// PolicyCache, with the bucket's watch (Policy ""), is the file the
	// last good mesh file is kept in, and started with when the store has
	// none or does not answer (live.SourceConfig.Cache). `natsmesh agent`
	// defaults it to $XDG_STATE_HOME/natsmesh/<service>/mesh.json.
	// Default: none.
	PolicyCache string
}

// loadWait bounds how long Start waits for the store's first answer before
// the agent starts (it starts without, and serves once a file arrives).
const loadWait = live.DefaultFetchTimeout + time.Second

// Sidecar is an agent with its connection and listeners: what `natsmesh
// agent` runs beside a service, and what a program embedding a sidecar
// runs. NewSidecar validates and listens at once, so a bad setting or a
// port in use is an error before anything connects; Start connects and
// serves.
type Sidecar struct {
	cfg SidecarConfig
	log *slog.Logger

	listeners []sidecarListener
	admin     net.Listener

	started  atomic.Bool
	a        *Agent
	nc       *nats.Conn
	ownConn  bool
	policies *live.Source // opened by the sidecar, closed at Shutdown
	adminSrv *http.Server
	errc     chan error
}

type sidecarListener struct {
	l       net.Listener
	purpose string
	serve   func(*Agent, net.Listener) error
}

// ErrNothingToDo is wrapped by NewSidecar's error for an agent with no
// upstream and every outbound listener off: it would serve nothing.
var ErrNothingToDo = errors.New("nothing to do: no upstream to serve and every outbound listener (HTTP proxy, gRPC proxy, binds) is off")

// NewSidecar validates cfg and opens its listeners.
func NewSidecar(cfg SidecarConfig) (*Sidecar, error) {
	if err := cfg.Agent.Validate(); err != nil {
		return nil, err
	}
	s := &Sidecar{cfg: cfg, log: cfg.Agent.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	add := func(addr, purpose string, serve func(*Agent, net.Listener) error) error {
		if admin.Off(addr) {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("agent: %s listener: %w", purpose, err)
		}
		s.listeners = append(s.listeners, sidecarListener{l, purpose, serve})
		return nil
	}
	var err error
	for _, b := range cfg.Binds {
		if _, _, perr := wire.ParseHost(b.Dest, cfg.Agent.Domains); perr != nil {
			err = fmt.Errorf("%w: bind %q: %v", ErrConfig, b.Dest, wire.FromError(perr).Message)
			break
		}
		if b.Addr == "" {
			err = fmt.Errorf("%w: bind %q has no address", ErrConfig, b.Dest)
			break
		}
	}
	if err == nil {
		err = add(cfg.HTTP, "HTTP proxy", (*Agent).ServeHTTPProxy)
	}
	if err == nil {
		err = add(cfg.GRPC, "gRPC proxy", (*Agent).ServeGRPCProxy)
	}
	for _, b := range cfg.Binds {
		if err != nil {
			break
		}
		err = add(b.Addr, "bind "+b.Dest, func(a *Agent, l net.Listener) error { return a.ServeBind(l, b.Dest) })
	}
	if err == nil && len(s.listeners) == 0 && cfg.Agent.Upstream == "" {
		err = fmt.Errorf("%w: %w", ErrConfig, ErrNothingToDo)
	}
	if err == nil {
		if s.admin, err = admin.Listen(cfg.Admin); err != nil {
			err = fmt.Errorf("agent: admin listener: %w", err)
		}
	}
	if err == nil && cfg.Agent.Policies == nil && cfg.Policy != "" && cfg.Policy != live.Off {
		// A local file loads now, so a bad one is reported before
		// anything connects.
		s.policies, err = live.WatchFile(context.Background(), cfg.Policy, live.SourceConfig{Logger: s.log})
	}
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	s.errc = make(chan error, len(s.listeners)+1)
	return s, nil
}

func (s *Sidecar) closeListeners() {
	for _, l := range s.listeners {
		l.l.Close()
	}
	if s.admin != nil {
		s.admin.Close()
	}
}

// Addr returns the address of the listener for purpose ("HTTP proxy",
// "gRPC proxy", "bind SERVICE", "admin"), or nil.
func (s *Sidecar) Addr(purpose string) net.Addr {
	if purpose == "admin" && s.admin != nil {
		return s.admin.Addr()
	}
	for _, l := range s.listeners {
		if l.purpose == purpose {
			return l.l.Addr()
		}
	}
	return nil
}

// Start connects to NATS (waiting for the first connection, see Connect,
// unless SidecarConfig.Conn is set), starts the agent and serves every
// listener. It does not block once connected; a listener that fails later
// is reported on Err. A second Start returns an error.
func (s *Sidecar) Start(ctx context.Context) error {
	if s.started.Swap(true) {
		return errors.New("agent: Sidecar.Start called twice")
	}
	nc := s.cfg.Conn
	if nc == nil {
		cc := s.cfg.Connect
		if cc.Name == "" {
			cc.Name = "natsmesh-agent:" + s.cfg.Agent.Service
		}
		if cc.Logger == nil {
			cc.Logger = s.log
		}
		var err error
		if nc, err = Connect(ctx, s.cfg.Agent.Service, cc); err != nil {
			s.closeListeners()
			if s.policies != nil {
				s.policies.Close()
			}
			return err
		}
		s.ownConn = true
	}
	s.nc = nc
	var err error
	switch {
	case s.cfg.Agent.Policies == nil && s.cfg.Policy == live.Off && natsconn.Authenticates(nc):
		err = fmt.Errorf("%w: policy %q: the connection to the broker authenticates, and an agent that does never serves with the built-in allow-all policy: "+
			"watch the policies bucket (the default) or give a mesh file", ErrConfig, live.Off)
	case s.cfg.Agent.Policies == nil && s.cfg.Policy == "" && s.policies == nil:
		s.policies = live.WatchBucket(nc, live.SourceConfig{Logger: s.log, Cache: s.cfg.PolicyCache})
		// The first calls find the file, when the store answers at once.
		t := time.NewTimer(loadWait)
		select {
		case <-s.policies.Loaded():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	var a *Agent
	if err == nil {
		s.cfg.Agent = s.withPolicies(s.cfg.Agent)
		a, err = New(nc, s.cfg.Agent)
	}
	if err == nil {
		err = a.Start(ctx)
	}
	if err != nil {
		s.closeListeners()
		if s.policies != nil {
			s.policies.Close()
		}
		if s.ownConn {
			nc.Close()
		}
		return err
	}
	s.a = a
	for _, l := range s.listeners {
		go func() {
			if err := l.serve(a, l.l); err != nil {
				s.errc <- fmt.Errorf("agent: %s: %w", l.purpose, err)
			}
		}()
		s.log.Info("listening", "purpose", l.purpose, "addr", l.l.Addr().String())
	}
	if s.admin != nil {
		s.adminSrv = admin.Serve(s.admin, a.AdminHandler(), func(err error) { s.errc <- fmt.Errorf("agent: admin: %w", err) })
		s.log.Info("listening", "purpose", "admin", "addr", s.admin.Addr().String())
	}
	return nil
}

// withPolicies returns ac with the sidecar's own policy source, if it
// opened one, and GET /config on the admin endpoint.
func (s *Sidecar) withPolicies(ac Config) Config {
	if ac.Policies == nil {
		ac.Policies = s.policies
	}
	if _, ok := ac.Admin["GET /config"]; !ok {
		handlers := maps.Clone(ac.Admin)
		if handlers == nil {
			handlers = map[string]http.Handler{}
		}
		handlers["GET /config"] = live.Handler(ac.Policies)
		ac.Admin = handlers
	}
	return ac
}

// Agent is the sidecar's agent, nil before Start.
func (s *Sidecar) Agent() *Agent { return s.a }

// Conn is the sidecar's NATS connection, nil before Start.
func (s *Sidecar) Conn() *nats.Conn { return s.nc }

// Err reports a listener that stopped serving.
func (s *Sidecar) Err() <-chan error { return s.errc }

// Shutdown shuts the agent down (see [Agent.Shutdown]); the admin endpoint
// keeps answering, not ready, while the agent drains. Then it flushes the
// last replies and closes the connection Start opened.
func (s *Sidecar) Shutdown(ctx context.Context) error {
	if s.a == nil {
		s.closeListeners()
		if s.policies != nil {
			s.policies.Close()
		}
		return nil
	}
	err := s.a.Shutdown(ctx)
	if s.adminSrv != nil {
		s.adminSrv.Close()
	}
	if s.policies != nil {
		s.policies.Close()
	}
	s.closeListeners()
	if s.ownConn {
		// The last replies may still sit in the connection's buffer: they
		// get a few seconds more even when ctx is over.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := natsconn.Close(cctx, s.nc); cerr != nil {
			s.log.Warn("closing NATS connection", "err", cerr)
		}
	}
	return err
}

// AdminHandler serves the agent's admin endpoint: /healthz (liveness),
// /readyz (ready while the agent's NATS connection is up and, when it
// serves a service, the instance is in its queue groups) and /debug/pprof/.
// The sidecar serves it on its admin listener; an in-process agent can
// mount it on a server of its own.
func (a *Agent) AdminHandler() http.Handler { return a.admin }

// Readiness returns nil while the agent takes calls, and otherwise why not:
// not started, shut down, no NATS connection, no mesh file yet (an agent
// that authenticates, see Config.Policies), or (with an inbound side) not
// serving because its service fails its health checks.
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
