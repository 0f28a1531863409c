package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/egress"
	"github.com/natsmesh/natsmesh/internal/admin"
	"github.com/natsmesh/natsmesh/internal/chain"
	"github.com/natsmesh/natsmesh/internal/discovery"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/internal/upstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("agent: invalid configuration")

// ErrClosed is returned by calls on an agent that has been shut down.
var ErrClosed = errors.New("agent: closed")

// Config is an agent's identity and the local service it fronts.
type Config struct {
	// Service is the name of the service this agent belongs to ([a-z0-9-]).
	// It is the caller identity of outbound calls and the subject of inbound
	// ones. Required.
	Service string
	// Subset is the instance's subset label (a version, "canary", ...). Empty:
	// the instance answers only calls for any instance of the service.
	Subset string
	// Version is informational, shown in discovery ($SRV.INFO).
	Version string
	// Upstream is the local service: "http://127.0.0.1:8080" for an HTTP
	// service or "h2c://127.0.0.1:9090" for a gRPC one (cleartext HTTP/2);
	// "https://..." and "h2://..." are the same over TLS (see
	// UpstreamTLS). A call in the other protocol gets a no-route answer.
	// Empty: no inbound side unless the application serves in-process
	// with Handle or GRPCServer.
	Upstream string
	// UpstreamTLS is the client side of TLS to an https:// or h2://
	// upstream: RootCAs verifies the service's certificate (nil: the
	// system's roots), Certificates is presented to a service that asks
	// for a client certificate (mutual TLS); ServerName defaults to the
	// upstream's host. Over https the agent offers HTTP/2 and HTTP/1.1
	// (ALPN) and speaks what the service chooses. Nil: the system's
	// roots, no client certificate. Set for a cleartext upstream, or
	// none, it is an error. LoadUpstreamTLS makes one from PEM files.
	UpstreamTLS *tls.Config
	// MaxConcurrent is a fixed bound of the calls in flight to the local
	// service, past which calls are answered overloaded at once: for an
	// operator who knows the service's capacity. Zero means the adaptive
	// limit, learned from the service's latency (pipeline.InboundConfig:
	// at most pipeline.DefaultMaxConcurrent, streams included, and only as
	// many as the service serves without queueing), shown in the metrics
	// as natsmesh_inbound_limit; a negative value means no limit.
	MaxConcurrent int
	// Timeout bounds an outbound call whose caller set no deadline, and an
	// inbound call whose message propagates none. Zero means
	// pipeline.DefaultTimeout (30s).
	Timeout time.Duration
	// MaxTimeout bounds the deadline an outbound caller sets: an HTTP
	// client's Mesh-Timeout request header (see docs/wire.md), a gRPC
	// client's grpc-timeout, an in-process caller's context. Zero means no
	// bound; a route's timeout in the mesh file bounds its calls further.
	MaxTimeout time.Duration
	// ClockSkew is how far this host's clock may be ahead of a caller's:
	// a call whose caller's deadline (Mesh-Start-By) is more than this
	// past when it arrives is not started. Zero means
	// pipeline.DefaultClockSkew (250ms); negative counts Mesh-Timeout
	// from receipt only.
	ClockSkew time.Duration
	// StreamIdle is how long a streamed call (a gRPC stream, a body
	// larger than one message, server-sent events, a WebSocket) may hear
	// nothing from the other side's agent, which sends keep-alives,
	// before it fails with a timeout: a killed agent or a lost connection
	// ends a stream within it. A stream is bounded by it and by its
	// caller's own deadline, not by Timeout, which bounds only the wait
	// for its first answer. Zero means wire.DefaultStreamIdle (10s).
	StreamIdle time.Duration
	// TakeWithin is how long a call to a mesh service waits for a sign
	// of life from the instance that got it (its answer, or its agent's
	// accept) before it is sent again to the service's queue group: a
	// frozen or dead instance costs a call that long, and a call that is
	// not idempotent still runs at most once (docs/wire.md, "Liveness").
	// Zero means wire.DefaultTakeWithin (300ms); 200ms to 10s.
	TakeWithin time.Duration
	// ReconnectGrace is how long an outbound call made while the broker
	// connection is down waits for it to return before failing with
	// broker-unavailable. Zero means pipeline.DefaultReconnectGrace (2s);
	// negative fails at once.
	ReconnectGrace time.Duration
	// BodyTimeout bounds each wait for a request body's bytes on the
	// outbound HTTP listeners (proxy and binds): a client that sends
	// nothing for that long while its body is awaited gets 408
	// request-timeout. A streamed body may take as long as it keeps
	// coming. Zero means httpguard.DefaultBodyTimeout (10s); negative
	// means no bound.
	BodyTimeout time.Duration
	// Domains are mesh domains accepted after a service name in a request's
	// host ("orders.svc.cluster.local" with "svc.cluster.local"), besides
	// wire.DefaultDomain ("orders.mesh"). See wire.ParseHost.
	Domains []string
	// EgressDial opens the connections of the calls that leave the mesh
	// through the HTTP proxy (package egress): plain HTTP to a host
	// outside the mesh, and CONNECT tunnels. Default: a net.Dialer's (5 s
	// to connect). For tests, and programs that route egress their own
	// way.
	EgressDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Policies is the live mesh file the agent applies (routes, splits,
	// retries, breakers, limits, allow lists); see live.WatchBucket and
	// live.WatchFile. While it holds no file, an agent whose connection
	// authenticates (natsconn.Authenticates: an NKey, creds, a user, a
	// token or a client certificate, to a broker that asks for them)
	// refuses every call with no-mesh-file and is not ready; on an open
	// broker the built-in policy applies meanwhile. Nil applies the
	// built-in policy for good: on an open broker; on a connection that
	// authenticates New refuses nil (ErrConfig) unless BuiltinPolicy is
	// set (the sidecar refuses live.Off there, see SidecarConfig.Policy).
	Policies *live.Source
	// BuiltinPolicy serves with the built-in allow-all policy although
	// the connection authenticates and Policies is nil: the broker's
	// permissions alone decide who may call whom. For programs and tests
	// that want exactly that; Start warns about it. Without it, an agent
	// that authenticates never serves with the built-in policy
	// (docs/security.md, "Fail closed"). It changes nothing when Policies
	// is set or the connection does not authenticate.
	BuiltinPolicy bool
	// Telemetry records the agent's calls (metrics, traces, access logs).
	// Nil records none.
	Telemetry *telemetry.Telemetry
	// Outbound and Inbound are further middleware of the agent's two call
	// pipelines, run innermost, after the mesh's own (see package pipeline
	// for the order the mesh composes them in), the first outermost.
	Outbound []pipeline.OutboundMiddleware
	Inbound  []pipeline.InboundMiddleware
	// Health configures the health checks of the local service.
	Health HealthConfig
	// Admin adds endpoints to the agent's admin handler, by pattern
	// ("GET /metrics", "GET /config"); see AdminHandler.
	Admin map[string]http.Handler
	// Logger receives the agent's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// semver is what nats.go/micro accepts as a service version (semver.org).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// Agent is one service instance's agent. Create it with New, add in-process
// handlers if any, then Start it.
type Agent struct {
	nc       *nats.Conn
	cfg      Config
	log      *slog.Logger
	upstream *url.URL

	in  *inbound
	out *outbound
	// releases are the outbound pipeline's, released at Shutdown (or by
	// a New that fails).
	releases chain.Releases
	// failClosed: the connection authenticates and Policies is set, so no
	// call is served while Policies holds no file.
	failClosed bool
	// send is the outbound pipeline every outbound entry point uses.
	send *pipeline.Outbound
	// egress serves the HTTP proxy's calls to hosts outside the mesh.
	egress *egress.Handler
	admin  http.Handler
	// endpoints are the inbound subjects as discovery shows them, with
	// their counts; set by Start.
	endpoints []*discovery.Endpoint
	// instance is the agent's instance ID: its discovery ID and the
	// third token of its instance subject (wire.InstanceSubject).
	instance string

	mu      sync.Mutex
	started bool
	closed  bool
	disc    *discovery.Responder
	stop    context.CancelFunc
	done    chan struct{} // closed when Shutdown has finished
}

// New validates cfg and returns an agent on nc. It does not subscribe or
// listen: that is Start's job.
//
// nc must deliver replies under the service's inbox prefix
// (wire.InboxPrefix), which the broker's permissions give to that service
// alone: connect with [Connect], or pass
// nats.CustomInboxPrefix(wire.InboxPrefix(service)) to nats.Connect.
func New(nc *nats.Conn, cfg Config) (*Agent, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil NATS connection", ErrConfig)
	}
	upstream, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if err := checkInboxPrefix(nc, cfg.Service); err != nil {
		return nil, err
	}
	if cfg.Policies == nil && !cfg.BuiltinPolicy && natsconn.Authenticates(nc) {
		return nil, fmt.Errorf("%w: the connection to the broker authenticates and Config.Policies is nil: an agent that authenticates never serves "+
			"with the built-in allow-all policy; give it the mesh file (live.WatchBucket, live.WatchFile, live.Static), "+
			"or set Config.BuiltinPolicy to let the broker's permissions alone decide", ErrConfig)
	}
	a := &Agent{
		instance: nuid.Next(),
		nc:       nc,
		cfg:      cfg,
		log:      cfg.Logger.With("service", cfg.Service),
		upstream: upstream,
		done:     make(chan struct{}),
		// Decided once: nc is connected (or its credentials known).
		failClosed: cfg.Policies != nil && natsconn.Authenticates(nc),
	}
	a.in = newInbound(a) // before the chains: passive health is its part
	a.send, err = pipeline.NewOutbound(nc, pipeline.OutboundConfig{
		Timeout:        cfg.Timeout,
		MaxTimeout:     cfg.MaxTimeout,
		ReconnectGrace: cfg.ReconnectGrace,
		StreamIdle:     cfg.StreamIdle,
		TakeWithin:     cfg.TakeWithin,
		Middleware:     chain.Outbound(a.chainOptions(), cfg.Outbound...),
	})
	if err != nil {
		a.releases.Release()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	a.egress, err = egress.New(egress.Config{Caller: cfg.Service, Policies: cfg.Policies, FailClosed: a.failClosed,
		Middleware: chain.Egress(a.chainOptions(), egress.Gate(cfg.Policies, a.failClosed)),
		Dial:       cfg.EgressDial, Timeout: cfg.Timeout, MaxTimeout: cfg.MaxTimeout, Limits: a.limitsNow, Logger: a.log})
	if err != nil {
		a.releases.Release()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	a.out = newOutbound(a)
	if a.admin, err = admin.New(admin.Config{Ready: a.Readiness, Handlers: cfg.Admin}); err != nil {
		a.releases.Release()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return a, nil
}

func (a *Agent) chainOptions() chain.Options {
	c := &a.cfg
	return chain.Options{Service: c.Service, Policies: c.Policies, FailClosed: a.failClosed, Telemetry: c.Telemetry, Logger: c.Logger,
		Instance: a.in.ej.Instance(), // passive health: internal/passive
		Releases: &a.releases}
}

// Validate reports whether c is a valid configuration, without connecting
// anywhere: the errors New would return for it.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize validates c, fills in its defaults, and returns the parsed
// upstream (nil when there is none).
func (c *Config) normalize() (*url.URL, error) {
	if err := wire.ValidateName("service", c.Service); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.Subset = wire.NormalSubset(c.Subset)
	if c.Subset != "" {
		if err := wire.ValidateName("subset", c.Subset); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if c.Version != "" && !semver.MatchString(c.Version) {
		return nil, fmt.Errorf("%w: version %q is not semantic (1.2.3, 2.0.0-rc.1)", ErrConfig, c.Version)
	}
	if c.Timeout < 0 || c.MaxTimeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout %v", ErrConfig, min(c.Timeout, c.MaxTimeout))
	}
	if c.Timeout == 0 {
		c.Timeout = pipeline.DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := c.Health.validate(); err != nil {
		return nil, err
	}
	if c.Upstream == "" {
		if c.UpstreamTLS != nil {
			return nil, fmt.Errorf("%w: TLS settings for the upstream, but no upstream", ErrConfig)
		}
		return nil, nil
	}
	u, err := parseUpstream(c.Upstream)
	if err == nil && c.UpstreamTLS != nil && !upstream.TLS(u) {
		err = fmt.Errorf("%w: upstream %q is cleartext, but TLS settings are given for it (https:// or h2:// speak TLS)", ErrConfig, c.Upstream)
	}
	return u, err
}

// limitsNow bounds a message by the max_payload of the server the agent is
// connected to now (it may change on reconnect; 0 before the first
// connection means the default).
func (a *Agent) limitsNow() wire.Limits {
	return pipeline.LimitsOf(a.nc)
}

// Name returns the agent's service name, its identity on the mesh.
func (a *Agent) Name() string { return a.cfg.Service }

// Start answers discovery for the instance ($SRV.PING, $SRV.INFO,
// $SRV.STATS, as nats.go/micro services do) and starts health checking; the
// inbound subscriptions follow as soon as the local service is healthy (at
// once when there is no health check). It does not block, and ctx bounds
// only the start: Shutdown stops the agent. Start after Shutdown returns
// ErrClosed; a second Start does nothing.
func (a *Agent) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if a.started {
		return nil
	}
	a.endpoints = a.newEndpoints()
	if a.in.enabled() {
		if err := a.in.prepare(); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.cfg.Telemetry.SetServing(a.cfg.Service, a.cfg.Subset, false)
		a.cfg.Telemetry.SetEjected(a.cfg.Service, a.cfg.Subset, false)
	}
	if err := a.startDiscovery(); err != nil {
		return fmt.Errorf("agent: answering discovery for %s: %w", a.cfg.Service, err)
	}
	a.started = true
	// Discoverable first, then in the queue groups (once healthy).
	if a.in.enabled() {
		ctx, cancel := context.WithCancel(context.Background())
		a.stop = cancel
		a.in.run(ctx)
	}
	warnAnonymous(a.nc, a.cfg.Service, a.log)
	switch {
	case a.failClosed && a.meshFile() == nil:
		a.log.Warn("agent: no mesh file yet: every call is refused (" + string(wire.KindNoMeshFile) + ") and /readyz is 503 until one is applied " +
			"(natsmesh policy apply); an agent that authenticates never serves with the built-in allow-all policy")
	case a.cfg.Policies == nil && !anonymous(a.nc):
		a.log.Warn("agent: Config.BuiltinPolicy: the built-in policy applies, without allow lists; only the broker's permissions decide who may call " + a.cfg.Service)
	}
	return nil
}

// meshFile is the mesh file the agent applies now, nil if none.
func (a *Agent) meshFile() *policies.File {
	if a.cfg.Policies == nil {
		return nil
	}
	f, _ := a.cfg.Policies.Current()
	return f
}

func (a *Agent) version() string {
	if a.cfg.Version != "" {
		return a.cfg.Version
	}
	return "0.0.0"
}

// HasInbound reports whether the agent serves calls to its service (it has an
// upstream or in-process handlers), as opposed to outbound calls only.
func (a *Agent) HasInbound() bool { return a.in.enabled() }

// Serving reports whether the agent holds its inbound subscriptions now.
func (a *Agent) Serving() bool { return a.in.serving() }

// Ready waits until the agent is ready (see Readiness: started, connected
// and, with an inbound side, serving since its service passed its health
// checks), or returns why it is not after timeout, or ErrClosed once it
// has shut down. It returns at once when the broker refuses the
// instance's queue subscriptions (a subset the mesh file does not
// declare, credentials of another service): that is no matter of time.
func (a *Agent) Ready(timeout time.Duration) error {
	err := admin.WaitReady(timeout, a.done, func() error {
		err := a.Readiness()
		if err != nil && a.in.hold.Refusal() != nil {
			return admin.Final(err)
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrDone):
		return ErrClosed
	}
	if refusal := a.in.hold.Refusal(); refusal != nil {
		return fmt.Errorf("agent: %w", refusal)
	}
	return fmt.Errorf("agent: %s not ready after %v: %w", a.cfg.Service, timeout, err)
}

// Shutdown stops taking new calls and finishes the ones in flight: it drains
// the inbound subscriptions (messages already delivered are still served)
// and waits for every inbound call to be answered, then closes the outbound
// listeners' servers gracefully and the outbound pipeline (a call through
// the agent's Transport or ClientConn fails from then on with
// broker-unavailable), then deregisters. If ctx ends first it
// returns ctx's error, with the remaining calls still finishing in the
// background. It is safe to call more than once and concurrently.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		select {
		case <-a.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.closed = true
	stop, disc := a.stop, a.disc
	a.mu.Unlock()

	finished := make(chan error, 1)
	go func() {
		var errs []error
		if stop != nil {
			stop()
		}
		errs = append(errs, a.in.shutdown())
		// The outbound listeners' servers close what is left when ctx
		// ends: a stalled client must not hold up the exit.
		errs = append(errs, a.out.shutdown(ctx))
		a.egress.Close() // the tunnels the servers do not track
		// Its reply muxes: calls still waiting fail, later ones are
		// refused.
		errs = append(errs, a.send.Close())
		if disc != nil {
			errs = append(errs, disc.Stop())
		}
		a.releases.Release() // its breakers leave the metrics
		close(a.done)
		finished <- errors.Join(errs...)
	}()
	select {
	case err := <-finished:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when Shutdown has finished.
func (a *Agent) Done() <-chan struct{} { return a.done }
