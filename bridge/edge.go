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
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/admin"
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
	// Admin is the admin listener's address: /healthz, /readyz (ready while
	// connected and not shutting down), /debug/pprof/, GET /config and the
	// endpoints of Gateway.Admin and AdminConn (see [Gateway.AdminHandler]).
	Admin string
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
	// path watches that local file (live.WatchFile; it must load at
	// NewEdge), and live.Off applies the built-in policy only, which
	// Start refuses on a connection that authenticates
	// (ErrInvalidConfig). The admin endpoint serves what applies on GET
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

// loadWait bounds how long Start waits for the store's first answer before
// the gateway starts (it starts without, and serves once a file arrives).
const loadWait = live.DefaultFetchTimeout + time.Second

// Edge is the edge gateway with its connection and listeners: what
// `natsmesh bridge` runs, and what a program embedding the edge runs.
// NewEdge validates and listens at once, so a bad setting or a port in use
// is an error before anything connects; Start connects and serves;
// Shutdown drains.
type Edge struct {
	cfg EdgeConfig
	log *slog.Logger

	ln, adminLn net.Listener
	served      chan struct{} // closed when the gateway's Serve returns
	errc        chan error
	releaseOnce sync.Once

	// mu guards the lifecycle state below. Start holds it only to check
	// and to publish, never while it connects or builds the gateway, so
	// Shutdown (which cancels that work through cancel) never waits for a
	// connection attempt.
	mu               sync.Mutex
	started, stopped bool
	cancel           context.CancelFunc // ends Start's connect; nil outside Start
	g                *Gateway
	nc               *nats.Conn
	ownConn          bool
	policies         *live.Source // opened by the edge, closed at Shutdown
	adminSrv         *http.Server
}

// ErrShutdown is returned by a Start that Shutdown ended or preceded.
var ErrShutdown = errors.New("bridge: edge shut down")

// NewEdge validates cfg and opens its listeners. Errors of the
// configuration wrap ErrInvalidConfig; a listener that cannot be opened is
// "bridge: gateway listener: ..." or "bridge: admin listener: ...".
func NewEdge(cfg EdgeConfig) (*Edge, error) {
	if err := cfg.Gateway.Validate(); err != nil {
		return nil, err
	}
	if cfg.Gateway.Name == "" {
		cfg.Gateway.Name = "bridge"
	}
	e := &Edge{cfg: cfg, log: cfg.Gateway.Logger, errc: make(chan error, 2), served: make(chan struct{})}
	if e.log == nil {
		e.log = slog.Default()
	}
	if cfg.Gateway.Conn == nil {
		if err := cfg.Connect.Validate(cfg.Gateway.Name); err != nil {
			return nil, fmt.Errorf("bridge: %w: %w", err, ErrInvalidConfig)
		}
	}
	if cfg.Listen == "" {
		return nil, fmt.Errorf("bridge: no gateway listener address: %w", ErrInvalidConfig)
	}
	var err error
	if e.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("bridge: gateway listener: %w", err)
	}
	if e.adminLn, err = admin.Listen(cfg.Admin); err != nil {
		err = fmt.Errorf("bridge: admin listener: %w", err)
	}
	if err == nil && cfg.Gateway.Policies == nil && cfg.Policy != "" && cfg.Policy != live.Off {
		// A local file loads now, so a bad one is reported before
		// anything connects.
		e.policies, err = live.WatchFile(context.Background(), cfg.Policy, live.SourceConfig{Logger: e.log})
	}
	if err != nil {
		e.release()
		return nil, err
	}
	return e, nil
}

// release closes what the edge opened: its listeners, its policy source
// and, when it dialed it, its connection. Only the first call does
// anything; the caller holds mu, or is NewEdge.
func (e *Edge) release() {
	e.releaseOnce.Do(func() {
		e.ln.Close()
		if e.adminLn != nil {
			e.adminLn.Close()
		}
		if e.policies != nil {
			e.policies.Close()
		}
		if e.ownConn && e.nc != nil {
			e.nc.Close()
		}
	})
}

// Addr is the address of the gateway's listener.
func (e *Edge) Addr() net.Addr { return e.ln.Addr() }

// AdminAddr is the address of the admin listener, or nil without one.
func (e *Edge) AdminAddr() net.Addr {
	if e.adminLn == nil {
		return nil
	}
	return e.adminLn.Addr()
}

// Start connects to NATS (waiting for the first connection, see
// [ConnectConfig], unless Gateway.Conn is set), starts the gateway and
// serves both listeners. It does not block once connected; a listener that
// fails later is reported on Err. When ctx ends while it waits for NATS,
// it returns ctx.Err(). A second Start returns an error; one after
// Shutdown, or one that Shutdown interrupts (its wait for NATS ends),
// returns an error matching ErrShutdown and leaves nothing open. After a
// failed Start, the listeners are closed.
func (e *Edge) Start(ctx context.Context) error {
	e.mu.Lock()
	switch {
	case e.started:
		e.mu.Unlock()
		return errors.New("bridge: Edge.Start called twice")
	case e.stopped:
		e.mu.Unlock()
		return fmt.Errorf("bridge: Edge.Start after Shutdown: %w", ErrShutdown)
	}
	e.started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.cancel = cancel
	policies := e.policies
	e.mu.Unlock()

	b, err := e.build(ctx, policies)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cancel = nil
	if e.stopped { // whatever build returned: its context was cancelled
		err = fmt.Errorf("bridge: Shutdown while Start was connecting: %w", ErrShutdown)
	}
	if err != nil {
		b.abandon()
		e.release()
		return err
	}
	e.serve(b)
	return nil
}

// built is what Edge.build made: what Start publishes once it knows that
// Shutdown has not come, or else closes.
type built struct {
	g        *Gateway
	nc       *nats.Conn
	ownConn  bool
	policies *live.Source
	ownSrc   bool // policies opened by build, not NewEdge
}

// abandon closes what build made (the edge's own resources are release's).
func (b *built) abandon() {
	if b.g != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b.g.Shutdown(ctx)
		cancel()
	}
	if b.ownSrc && b.policies != nil {
		b.policies.Close()
	}
	if b.ownConn && b.nc != nil {
		b.nc.Close()
	}
}

// build connects and makes the gateway, without mu; policies is the
// source NewEdge opened, if any. On error it returns what it made so far.
func (e *Edge) build(ctx context.Context, policies *live.Source) (*built, error) {
	b := &built{policies: policies}
	gc := e.cfg.Gateway
	if gc.Conn == nil {
		cc := e.cfg.Connect
		if cc.Name == "" {
			cc.Name = "natsmesh-bridge:" + gc.Name
		}
		if cc.Logger == nil {
			cc.Logger = e.log
		}
		nc, err := natsconn.Connect(ctx, gc.Name, cc)
		if err != nil {
			return b, connectError(err)
		}
		gc.Conn, b.ownConn = nc, true
	}
	b.nc = gc.Conn
	switch {
	case gc.Policies == nil && e.cfg.Policy == live.Off && natsconn.Authenticates(b.nc):
		return b, fmt.Errorf("bridge: policy %q: the connection to the broker authenticates, and a gateway that does never serves with the built-in allow-all policy: "+
			"watch the policies bucket (the default) or give a mesh file: %w", live.Off, ErrInvalidConfig)
	case gc.Policies == nil && e.cfg.Policy == "" && b.policies == nil:
		b.policies, b.ownSrc = live.WatchBucket(b.nc, live.SourceConfig{Logger: e.log, Cache: e.cfg.PolicyCache}), true
		// The first requests find the file, when the store answers at once.
		t := time.NewTimer(loadWait)
		select {
		case <-b.policies.Loaded():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if gc.Policies == nil {
		gc.Policies = b.policies
	}
	adm := maps.Clone(gc.Admin)
	if adm == nil {
		adm = map[string]http.Handler{}
	}
	if _, ok := adm["GET /config"]; !ok {
		adm["GET /config"] = live.Handler(gc.Policies)
	}
	if e.cfg.AdminConn != nil {
		more, err := e.cfg.AdminConn(b.nc)
		if err != nil {
			return b, fmt.Errorf("bridge: admin endpoints: %w", err)
		}
		for pattern, h := range more {
			if _, dup := gc.Admin[pattern]; dup {
				return b, fmt.Errorf("bridge: admin endpoint %q given twice: %w", pattern, ErrInvalidConfig)
			}
			adm[pattern] = h
		}
	}
	gc.Admin = adm
	g, err := NewGateway(gc)
	if err != nil {
		return b, err
	}
	b.g = g
	return b, g.Start(ctx)
}

// serve publishes b and serves both listeners; the caller holds mu.
func (e *Edge) serve(b *built) {
	g := b.g
	e.g, e.nc, e.ownConn, e.policies = g, b.nc, b.ownConn, b.policies
	go func() {
		defer close(e.served)
		if err := g.Serve(e.ln, e.cfg.TLS); err != nil && !errors.Is(err, ErrClosed) {
			e.errc <- fmt.Errorf("bridge: gateway: %w", err)
		}
	}()
	e.log.Info("listening", "purpose", "gateway", "addr", e.ln.Addr().String(), "tls", e.cfg.TLS != nil)
	if e.adminLn != nil {
		e.adminSrv = admin.Serve(e.adminLn, g.AdminHandler(), func(err error) { e.errc <- fmt.Errorf("bridge: admin: %w", err) })
		e.log.Info("listening", "purpose", "admin", "addr", e.adminLn.Addr().String())
	}
}

// connectError presents an error of package natsconn as the bridge's.
func connectError(err error) error {
	if ce := (*natsconn.ConfigError)(nil); errors.As(err, &ce) {
		return fmt.Errorf("bridge: %w: %w", err, ErrInvalidConfig)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("bridge: %w", err)
}

// Gateway is the edge's gateway, nil before Start succeeds.
func (e *Edge) Gateway() *Gateway {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.g
}

// Conn is the edge's NATS connection, nil before Start succeeds.
func (e *Edge) Conn() *nats.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nc
}

// Err reports a listener that stopped serving.
func (e *Edge) Err() <-chan error { return e.errc }

// Shutdown drains the edge, in order: the gateway stops accepting and
// finishes the requests in flight (each bounded by the gateway's Timeout;
// those still running when ctx ends are cut off) and stops answering
// discovery; the policy source the edge opened closes; the connection Start
// opened is drained (its last publications flushed, for up to 5 seconds
// more when ctx is over) and closed; last the admin endpoint, which
// answers /readyz "not ready" throughout, closes. It returns the first
// error of those steps, and nil when called again. A Start still
// connecting is cancelled: it closes what it opened and returns an error.
func (e *Edge) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	if e.cancel != nil {
		e.cancel()
	}
	if e.g == nil {
		e.release()
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	// After a successful Start, the state is no longer written.
	err := e.g.Shutdown(ctx)
	select {
	case <-e.served:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if e.policies != nil {
		e.policies.Close()
	}
	if e.ownConn {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := natsconn.Close(cctx, e.nc); err == nil && cerr != nil {
			err = fmt.Errorf("bridge: %w", cerr)
		}
	}
	if e.adminSrv != nil {
		e.adminSrv.Close()
	}
	e.ln.Close()
	return err
}
