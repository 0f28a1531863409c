package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/admin"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/policies/live"
)

// Component is what a host runs: an agent, the edge gateway. Its
// constructor subscribes to nothing; Start subscribes (answers discovery, joins its
// queue groups) and does not block; Readiness is nil while it takes calls,
// and otherwise says why not; Shutdown stops taking new work (on its
// listeners too), finishes what is in flight and closes its outbound
// side, is safe to call more than once, and leaves the connection open.
type Component interface {
	Start(ctx context.Context) error
	Readiness() error
	Shutdown(ctx context.Context) error
}

// Shutdowner is what the host shuts down last: the telemetry.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Env is what the host made for a part by the time it builds the part's
// component.
type Env struct {
	// Conn is the part's connection, with the part's inbox prefix.
	Conn *nats.Conn
	// Policies is the host's policy source; nil applies the built-in
	// policy.
	Policies *live.Source
	// Logger is the host's.
	Logger *slog.Logger
}

// Listener is a port a part's component serves.
type Listener struct {
	// Purpose names it in logs, errors and [Host.Addr]: "HTTP proxy",
	// "gateway". Unique within its part.
	Purpose string
	// Addr is its address, host:port; "" or "off" means no listener.
	Addr string
	// Serve serves l until the component shuts down, then returns nil
	// (any other error is reported on [Host.Err]). The host calls it once
	// the component has started.
	Serve func(l net.Listener) error
}

// Part is one component with its identity, connection and listeners.
type Part struct {
	// Name is the component's identity on the mesh (a service's name, the
	// gateway's caller name): its connection's replies arrive under
	// wire.InboxPrefix(Name). Unique within the host. Required.
	Name string
	// Conn, when set, is the part's connection: the host uses it and
	// leaves it open. Otherwise Start connects with Connect as Name and
	// Shutdown drains and closes that connection.
	Conn *nats.Conn
	// Connect says how to connect when Conn is nil.
	Connect natsconn.Config
	// Listeners are the ports the component serves.
	Listeners []Listener
	// Build makes the component once its connection is up. Required.
	Build func(Env) (Component, error)
	// Admin, when set, returns further admin endpoints that need the
	// part's connection (the edge's dashboard); Start calls it once
	// connected. A pattern given twice fails Start.
	Admin func(*nats.Conn) (map[string]http.Handler, error)
}

// Policy says where the host's mesh file comes from.
type Policy struct {
	// Source, when set, is the policy source: the host uses it and leaves
	// it open, and the fields below do not apply.
	Source *live.Source
	// Path is "" to watch the policies bucket over the first part's
	// connection (live.WatchBucket: until it holds a file, a component
	// that authenticates refuses every call and one on an open broker
	// applies the built-in policy), a mesh file's path to watch that file
	// (live.WatchFile; it must load, which Start checks before it
	// connects), or live.Off for the built-in policy only, which Start
	// refuses when a connection authenticates unless Builtin is set: a
	// secured component needs a mesh file.
	Path string
	// Builtin lets live.Off apply on a connection that authenticates: the
	// components' own opt-in (agent.Config.BuiltinPolicy,
	// bridge.GatewayConfig.BuiltinPolicy), the broker's permissions
	// alone deciding.
	Builtin bool
	// Cache, with the bucket's watch, is the file the last good mesh file
	// is kept in (live.SourceConfig.Cache). Default: none.
	Cache string
	// Wait bounds how long Start waits for the bucket's first answer
	// before it starts the components (they start without, and serve once
	// a file arrives). Default live.DefaultFetchTimeout plus a second.
	Wait time.Duration
}

// Errors say how the host presents the errors of its own steps as its
// user's (the components' errors are returned as they are).
type Errors struct {
	// Prefix begins each: "agent" gives "agent: HTTP proxy listener: ...".
	// Default "host".
	Prefix string
	// Config presents a setting that can never work (a credentials file
	// that cannot be read, the built-in policy on a connection that
	// authenticates, an admin pattern given twice). Default: the error
	// with Prefix.
	Config func(error) error
	// Shutdown is wrapped by a Start that Shutdown preceded or
	// interrupted, and by Ready after Shutdown. Default ErrShutdown.
	Shutdown error
}

// Config is a host: its parts and what they share.
type Config struct {
	// Parts are the components, started in order. At least one.
	Parts []Part
	// Admin is the admin listener's address; "" or "off" means none. It
	// serves /healthz, /readyz (see Readiness) and /debug/pprof/ from the
	// start of Start, then also GET /config (the mesh file that applies,
	// live.Handler, unless AdminHandlers has its own), AdminHandlers and
	// the parts' Admin endpoints once the components are built.
	Admin string
	// AdminHandlers are further admin endpoints by pattern ("GET
	// /metrics").
	AdminHandlers map[string]http.Handler
	// Profiles serves Go's profiles on the admin endpoint
	// (admin.Config.Profiles). Default off.
	Profiles bool
	// Policy is the mesh file's source.
	Policy Policy
	// Telemetry, when set, is shut down last by Shutdown: the host owns it.
	Telemetry Shutdowner
	// Logger receives the host's logs. Default slog.Default().
	Logger *slog.Logger
	// Errors present the host's errors.
	Errors Errors
}

// ErrShutdown is the default of Errors.Shutdown.
var ErrShutdown = errors.New("host: shut down")

// drainGrace is how much longer than Shutdown's ctx the connections get to
// drain: the last replies may still sit in their buffers.
const drainGrace = 5 * time.Second

// Host runs its parts' components with what they share. See the package
// documentation for its lifecycle.
type Host struct {
	cfg   Config
	log   *slog.Logger
	errc  chan error
	done  chan struct{} // closed when Shutdown has finished
	admin atomic.Pointer[http.Handler]

	mu        sync.Mutex
	started   bool               // Start was called
	running   bool               // Start succeeded
	stopping  bool               // Shutdown was called
	phase     string             // what Start does now, for Readiness
	cancel    context.CancelFunc // ends Start's work; nil outside Start
	startDone chan struct{}      // closed when Start has returned
	r         *run               // what Start made, for Shutdown
	addrs     map[string]net.Addr
}

// run is what one Start made, torn down by Shutdown or by the Start that
// failed.
type run struct {
	lns         [][]net.Listener // by part, by listener; nil when off
	adminLn     net.Listener
	adminSrv    *http.Server
	policies    *live.Source
	ownPolicies bool
	conns       []*nats.Conn
	ownConns    []bool
	comps       []Component
	serving     sync.WaitGroup
}

// New validates cfg and returns its host. It does no I/O.
func New(cfg Config) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Errors.Prefix == "" {
		cfg.Errors.Prefix = "host"
	}
	if cfg.Errors.Shutdown == nil {
		cfg.Errors.Shutdown = ErrShutdown
	}
	h := &Host{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), addrs: map[string]net.Addr{}}
	if cfg.Errors.Config == nil {
		h.cfg.Errors.Config = func(err error) error { return h.errorf("%w", err) }
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	listeners := 1 // the admin endpoint's
	for _, p := range cfg.Parts {
		listeners += len(p.Listeners)
	}
	h.errc = make(chan error, listeners)
	var early http.Handler = admin.Handler(admin.Config{Ready: h.Readiness, Profiles: cfg.Profiles})
	h.admin.Store(&early)
	return h, nil
}

func (h *Host) validate() error {
	cfg := &h.cfg
	if len(cfg.Parts) == 0 {
		return h.configError(errors.New("no component to run"))
	}
	names := map[string]bool{}
	for _, p := range cfg.Parts {
		switch {
		case p.Name == "":
			return h.configError(errors.New("a part without a name"))
		case names[p.Name]:
			return h.configError(fmt.Errorf("two parts named %q", p.Name))
		case p.Build == nil:
			return h.configError(fmt.Errorf("part %q builds no component", p.Name))
		}
		names[p.Name] = true
		if p.Conn == nil {
			if err := p.Connect.Check(p.Name); err != nil {
				return h.configError(err)
			}
		}
		purposes := map[string]bool{}
		for _, l := range p.Listeners {
			if l.Purpose == "" || purposes[l.Purpose] || l.Serve == nil {
				return h.configError(fmt.Errorf("part %q: listener %q: no purpose, the purpose of another, or nothing to serve", p.Name, l.Purpose))
			}
			purposes[l.Purpose] = true
		}
	}
	// The admin endpoints' patterns, with GET /config as Start adds it.
	handlers := maps.Clone(cfg.AdminHandlers)
	if handlers == nil {
		handlers = map[string]http.Handler{}
	}
	if _, ok := handlers["GET /config"]; !ok {
		handlers["GET /config"] = http.NotFoundHandler()
	}
	if _, err := admin.New(admin.Config{Handlers: handlers}); err != nil {
		return h.configError(err)
	}
	return nil
}

// errorf is one of the host's own errors, with the prefix.
func (h *Host) errorf(format string, v ...any) error {
	return fmt.Errorf(h.cfg.Errors.Prefix+": "+format, v...)
}

func (h *Host) configError(err error) error { return h.cfg.Errors.Config(err) }

// connectError presents an error of natsconn.Connect.
func (h *Host) connectError(err error) error {
	if ce := (*natsconn.ConfigError)(nil); errors.As(err, &ce) {
		return h.configError(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return h.errorf("%w", err)
}

// Start connects and starts every part (see the package documentation). It
// does not block once the components are started; a listener that fails
// later is reported on Err. When ctx ends first, it returns ctx's error. A
// second Start returns an error; one after Shutdown, or one that Shutdown
// interrupts, returns an error that wraps Errors.Shutdown. A Start that
// fails closes what it opened.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	switch {
	case h.stopping:
		h.mu.Unlock()
		return h.errorf("Start after Shutdown: %w", h.cfg.Errors.Shutdown)
	case h.started:
		h.mu.Unlock()
		return h.errorf("Start called twice")
	}
	h.started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.cancel = cancel
	h.startDone = make(chan struct{})
	h.phase = "opening listeners"
	n := len(h.cfg.Parts)
	r := &run{lns: make([][]net.Listener, n), conns: make([]*nats.Conn, n), ownConns: make([]bool, n), comps: make([]Component, n)}
	h.r = r
	h.mu.Unlock()

	err := h.start(ctx, r)

	h.mu.Lock()
	defer h.mu.Unlock()
	defer close(h.startDone)
	h.cancel, h.phase = nil, ""
	switch {
	case h.stopping: // whatever start returned: Shutdown stops what it made
		return h.errorf("Shutdown while Start was under way: %w", h.cfg.Errors.Shutdown)
	case err != nil:
		// Shutdown, should it come now, waits for this and finds nothing.
		h.r = nil
		h.phase = "closing after a failed start"
		h.mu.Unlock()
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainGrace)
		h.teardown(tctx, r)
		cancel()
		h.mu.Lock()
		h.phase = ""
		return err
	}
	h.running = true
	return nil
}

func (h *Host) setPhase(phase string) {
	h.mu.Lock()
	h.phase = phase
	h.mu.Unlock()
}

// start does Start's work, recording in r what it opens.
func (h *Host) start(ctx context.Context, r *run) error {
	parts := h.cfg.Parts
	for i, p := range parts {
		r.lns[i] = make([]net.Listener, len(p.Listeners))
		for j, l := range p.Listeners {
			if admin.Off(l.Addr) {
				continue
			}
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				return h.errorf("%s listener: %w", l.Purpose, err)
			}
			r.lns[i][j] = ln
			h.setAddr(p.Name, l.Purpose, ln.Addr())
		}
	}
	ln, err := admin.Listen(h.cfg.Admin)
	if err != nil {
		return h.errorf("admin listener: %w", err)
	}
	if ln != nil {
		r.adminLn = ln
		h.setAddr("", "admin", ln.Addr())
		handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { (*h.admin.Load()).ServeHTTP(w, req) })
		r.adminSrv = admin.Serve(ln, handler, func(err error) { h.report(h.errorf("admin: %w", err)) })
		h.log.Info("listening", "purpose", "admin", "addr", ln.Addr().String())
	}

	pol := h.cfg.Policy
	r.policies = pol.Source
	if r.policies == nil && pol.Path != "" && pol.Path != live.Off {
		// A local file loads before anything connects: a bad one is
		// reported at once.
		h.setPhase("loading the mesh file " + pol.Path)
		if r.policies, err = live.WatchFile(ctx, pol.Path, live.SourceConfig{Logger: h.log}); err != nil {
			return h.errorf("%w", err)
		}
		r.ownPolicies = true
	}

	for i, p := range parts {
		if p.Conn != nil {
			r.conns[i] = p.Conn
			continue
		}
		cc := p.Connect
		if cc.Logger == nil {
			cc.Logger = h.log
		}
		h.setPhase("connecting to NATS as " + p.Name)
		nc, err := natsconn.Connect(ctx, p.Name, cc)
		if err != nil {
			return h.connectError(err)
		}
		r.conns[i], r.ownConns[i] = nc, true
	}

	switch {
	case r.policies == nil && pol.Path == live.Off && !pol.Builtin:
		for i, nc := range r.conns {
			if natsconn.Authenticates(nc) {
				return h.configError(fmt.Errorf("policy %q: the connection of %s to the broker authenticates, and a component that does never serves with the built-in allow-all policy: "+
					"watch the policies bucket (the default) or give a mesh file", live.Off, parts[i].Name))
			}
		}
	case r.policies == nil && pol.Path != live.Off:
		r.policies = live.WatchBucket(r.conns[0], live.SourceConfig{Logger: h.log, Cache: pol.Cache})
		r.ownPolicies = true
		// The first calls find the file, when the store answers at once.
		wait := pol.Wait
		if wait <= 0 {
			wait = live.DefaultFetchTimeout + time.Second
		}
		h.setPhase("waiting for the mesh file")
		t := time.NewTimer(wait)
		select {
		case <-r.policies.Loaded():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	h.setPhase("starting")
	handlers := maps.Clone(h.cfg.AdminHandlers)
	if handlers == nil {
		handlers = map[string]http.Handler{}
	}
	for i, p := range parts {
		c, err := p.Build(Env{Conn: r.conns[i], Policies: r.policies, Logger: h.log})
		if err != nil {
			return err
		}
		r.comps[i] = c
		if p.Admin == nil {
			continue
		}
		more, err := p.Admin(r.conns[i])
		if err != nil {
			return h.errorf("admin endpoints: %w", err)
		}
		for pattern, handler := range more {
			if _, dup := handlers[pattern]; dup {
				return h.configError(fmt.Errorf("admin endpoint %q given twice", pattern))
			}
			handlers[pattern] = handler
		}
	}
	if _, ok := handlers["GET /config"]; !ok {
		handlers["GET /config"] = live.Handler(r.policies)
	}
	full, err := admin.New(admin.Config{Ready: h.Readiness, Handlers: handlers, Profiles: h.cfg.Profiles})
	if err != nil {
		return h.configError(err)
	}
	h.admin.Store(&full)
	for _, c := range r.comps {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}

	for i, p := range parts {
		for j, l := range p.Listeners {
			ln := r.lns[i][j]
			if ln == nil {
				continue
			}
			r.serving.Go(func() {
				if err := l.Serve(ln); err != nil {
					h.report(h.errorf("%s: %w", l.Purpose, err))
				}
			})
			h.log.Info("listening", "purpose", l.Purpose, "addr", ln.Addr().String(), "part", p.Name)
		}
	}
	return nil
}

// report sends a listener's failure to Err, unless the host is shutting
// down (a listener closed under its server is no failure then).
func (h *Host) report(err error) {
	h.mu.Lock()
	stopping := h.stopping
	h.mu.Unlock()
	if stopping {
		h.log.Debug("host: while shutting down", "err", err)
		return
	}
	select {
	case h.errc <- err:
	default:
	}
}

func (h *Host) setAddr(part, purpose string, a net.Addr) {
	h.mu.Lock()
	h.addrs[part+"\x00"+purpose] = a
	h.mu.Unlock()
}

// Addr is the address of part's listener for purpose, nil before Start
// opened it or when it is off.
func (h *Host) Addr(part, purpose string) net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addrs[part+"\x00"+purpose]
}

// AdminAddr is the address of the admin listener, nil before Start opened
// it or when it is off.
func (h *Host) AdminAddr() net.Addr { return h.Addr("", "admin") }

// Conn is part's connection, nil before Start succeeds.
func (h *Host) Conn(part string) *nats.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.index(part); i >= 0 && h.running {
		return h.r.conns[i]
	}
	return nil
}

// Component is part's component, nil before Start succeeds.
func (h *Host) Component(part string) Component {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.index(part); i >= 0 && h.running {
		return h.r.comps[i]
	}
	return nil
}

func (h *Host) index(part string) int {
	for i, p := range h.cfg.Parts {
		if p.Name == part {
			return i
		}
	}
	return -1
}

// Err reports a listener that stopped serving.
func (h *Host) Err() <-chan error { return h.errc }

// Readiness returns nil while every component takes calls, and otherwise
// why not: not started, what Start is doing ("starting: connecting to NATS
// as web"), shutting down, or the first component's reason that is not
// ready (after its part's name when the host has several).
func (h *Host) Readiness() error {
	h.mu.Lock()
	started, running, stopping, phase, r := h.started, h.running, h.stopping, h.phase, h.r
	h.mu.Unlock()
	switch {
	case stopping:
		return errors.New("shutting down")
	case !started:
		return errors.New("not started")
	case phase != "":
		return errors.New("starting: " + phase)
	case !running:
		return errors.New("not running: Start failed")
	}
	for i, c := range r.comps {
		if err := c.Readiness(); err != nil {
			if len(r.comps) > 1 {
				return fmt.Errorf("%s: %w", h.cfg.Parts[i].Name, err)
			}
			return err
		}
	}
	return nil
}

// Ready waits until the host is ready (see Readiness), or returns why it is
// not after timeout, or an error that wraps Errors.Shutdown once Shutdown
// has finished.
func (h *Host) Ready(timeout time.Duration) error {
	switch err := admin.WaitReady(timeout, h.done, h.Readiness); {
	case errors.Is(err, admin.ErrDone):
		return h.errorf("%w", h.cfg.Errors.Shutdown)
	case err != nil:
		return h.errorf("not ready after %v: %w", timeout, err)
	}
	return nil
}

// Shutdown stops the host: a Start under way is cancelled and waited for,
// then what it made stops in order (see the package documentation). The
// components' shutdown is bounded by ctx; the connections get a few
// seconds more to drain. It returns the errors of those steps, joined; a
// second call waits for the first and returns nil.
func (h *Host) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.stopping {
		h.mu.Unlock()
		select {
		case <-h.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.stopping = true
	if h.cancel != nil {
		h.cancel()
	}
	startDone := h.startDone
	h.mu.Unlock()
	defer close(h.done)
	if startDone != nil {
		<-startDone // soon: its work is cancelled
	}
	h.mu.Lock()
	r := h.r
	h.mu.Unlock()
	err := h.teardown(ctx, r)
	if h.cfg.Telemetry != nil {
		err = errors.Join(err, h.cfg.Telemetry.Shutdown(ctx))
	}
	return err
}

// teardown stops what r holds, in order.
func (h *Host) teardown(ctx context.Context, r *run) error {
	if r == nil {
		return nil
	}
	var errs []error
	// The components, at once: each stops taking new work, finishes what
	// is in flight within ctx, and closes its outbound side.
	cerrs := make([]error, len(r.comps))
	var wg sync.WaitGroup
	for i, c := range r.comps {
		if c != nil {
			wg.Go(func() { cerrs[i] = c.Shutdown(ctx) })
		}
	}
	wg.Wait()
	errs = append(errs, cerrs...)
	// The listeners: those served are closed by their servers by now,
	// those never served close here.
	for _, lns := range r.lns {
		for _, ln := range lns {
			if ln != nil {
				ln.Close()
			}
		}
	}
	served := make(chan struct{})
	go func() {
		r.serving.Wait()
		close(served)
	}()
	select {
	case <-served:
	case <-ctx.Done(): // the components said so already
	}
	if r.ownPolicies {
		r.policies.Close()
	}
	// The connections, drained: the last replies may still sit in their
	// buffers, and get a few seconds more even when ctx is over.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainGrace)
	defer cancel()
	nerrs := make([]error, len(r.conns))
	for i, nc := range r.conns {
		if nc != nil && r.ownConns[i] {
			wg.Go(func() {
				if err := natsconn.Close(cctx, nc); err != nil {
					nerrs[i] = h.errorf("%w", err)
				}
			})
		}
	}
	wg.Wait()
	errs = append(errs, nerrs...)
	// Last the admin endpoint, which answered "shutting down" throughout.
	if r.adminSrv != nil {
		r.adminSrv.Close()
	}
	// Closed here too: a server closed before its Serve goroutine took
	// the listener closes it only when that goroutine runs, and the port
	// must be free when teardown returns.
	if r.adminLn != nil {
		r.adminLn.Close()
	}
	return errors.Join(errs...)
}
