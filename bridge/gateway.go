package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/admin"
	"github.com/natsmesh/natsmesh/internal/chain"
	"github.com/natsmesh/natsmesh/internal/discovery"
	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/httpguard"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// ErrInvalidConfig is wrapped by every error [NewGateway] and [ParseRoute]
// return for a bad configuration.
var ErrInvalidConfig = errors.New("invalid config")

// Route sends the outside requests that match it to one destination: a
// meshed service (Service, optionally one Subset of it) or a NATS-native
// endpoint (Subject), such as a nats.go/micro service.
//
// A route matches on Host, on PathPrefix, or both. Host matches the request's
// Host with or without its port, case-insensitively. PathPrefix matches whole
// path segments: "/api" matches "/api" and "/api/x", not "/apix"; a prefix
// ending in "/" matches everything below it.
type Route struct {
	Host       string
	PathPrefix string
	// Service and Subset name a meshed service; Subset "" means any instance.
	Service string
	Subset  string
	// Subject is a plain NATS subject for a NATS-native endpoint, instead of
	// a mesh service. The request is sent as the mesh encodes it (the body as
	// the payload); a nats.go/micro error reply becomes its HTTP status.
	Subject string
	// StripPrefix removes PathPrefix from the path before forwarding, as
	// http.StripPrefix does.
	StripPrefix bool
}

// String returns r in the form ParseRoute reads.
func (r Route) String() string {
	dest := r.Service
	if r.Subset != "" {
		dest += "@" + r.Subset
	}
	if r.Subject != "" {
		dest = "nats:" + r.Subject
	}
	if r.StripPrefix {
		dest += "+strip"
	}
	return r.Host + r.PathPrefix + "=" + dest
}

// ParseRoute reads a route as the command line writes it:
//
//	HOST=SERVICE[@SUBSET]        api.example.com=orders
//	/PREFIX=SERVICE[@SUBSET]     /orders=orders@v2
//	/PREFIX=SUBSET.SERVICE       /v2=v2.orders (as agents address a subset)
//	HOST/PREFIX=SERVICE          api.example.com/v1=orders
//	.../PREFIX=nats:SUBJECT      /time=nats:svc.time
//
// A trailing "+strip" sets StripPrefix ("/orders=orders+strip"). ParseRoute
// checks the syntax only; [NewGateway] validates the names.
func ParseRoute(s string) (Route, error) {
	match, dest, ok := strings.Cut(s, "=")
	if !ok || match == "" || dest == "" {
		return Route{}, fmt.Errorf("bridge: route %q: want HOST_OR_/PREFIX=SERVICE[@SUBSET] or ...=nats:SUBJECT: %w", s, ErrInvalidConfig)
	}
	var r Route
	if d, found := strings.CutSuffix(dest, "+strip"); found {
		r.StripPrefix, dest = true, d
	}
	if i := strings.IndexByte(match, '/'); i >= 0 {
		r.Host, r.PathPrefix = match[:i], match[i:]
	} else {
		r.Host = match
	}
	if subject, found := strings.CutPrefix(dest, "nats:"); found {
		r.Subject = subject
	} else if service, subset, ok := strings.Cut(dest, "@"); ok {
		r.Service, r.Subset = service, subset
	} else if subset, service, ok := strings.Cut(dest, "."); ok {
		r.Service, r.Subset = service, subset
	} else {
		r.Service = dest
	}
	return r, nil
}

func (r Route) validate() error {
	if r.Host == "" && r.PathPrefix == "" {
		return fmt.Errorf("bridge: route %q matches nothing: set Host or PathPrefix: %w", r, ErrInvalidConfig)
	}
	if r.PathPrefix != "" && r.PathPrefix[0] != '/' {
		return fmt.Errorf("bridge: route %q: path prefix must start with /: %w", r, ErrInvalidConfig)
	}
	if r.StripPrefix && r.PathPrefix == "" {
		return fmt.Errorf("bridge: route %q: strip without a path prefix: %w", r, ErrInvalidConfig)
	}
	if strings.ContainsAny(r.Host, "/ \t\r\n") {
		return fmt.Errorf("bridge: route %q: bad host: %w", r, ErrInvalidConfig)
	}
	if (r.Service == "") == (r.Subject == "") {
		return fmt.Errorf("bridge: route %q: set exactly one of service and subject: %w", r, ErrInvalidConfig)
	}
	if r.Subject != "" {
		if r.Subset != "" {
			return fmt.Errorf("bridge: route %q: a subject has no subset: %w", r, ErrInvalidConfig)
		}
		return validPublishSubject(r.Subject)
	}
	if err := wire.ValidateName("service", r.Service); err != nil {
		return fmt.Errorf("bridge: route %q: %w: %w", r, ErrInvalidConfig, err)
	}
	if subset := wire.NormalSubset(r.Subset); subset != "" {
		if err := wire.ValidateName("subset", subset); err != nil {
			return fmt.Errorf("bridge: route %q: %w: %w", r, ErrInvalidConfig, err)
		}
	}
	return nil
}

// validPublishSubject checks that s is a NATS subject one can publish to: no
// empty token, no wildcard, no whitespace or control byte.
func validPublishSubject(s string) error {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return fmt.Errorf("bridge: %q is not a NATS subject one can publish to: %w", s, ErrInvalidConfig)
		}
	}
	return nil
}

// GatewayConfig configures a [Gateway]. Zero values take the defaults noted
// on each field.
type GatewayConfig struct {
	// Conn is the gateway's NATS connection, whose replies arrive under the
	// gateway's inbox prefix (wire.InboxPrefix(Name)). Required.
	Conn *nats.Conn
	// Name is the gateway's identity as a caller (the caller token of the
	// subjects it publishes). Default "bridge".
	Name string
	// Routes, tried as described on [Gateway].
	Routes []Route
	// Limits bound each request. A zero MaxPayload is Conn's max_payload
	// at the time of the request.
	Limits wire.Limits
	// Timeout bounds each request from the moment it is routed to the end
	// of the reply; a streamed reply (server-sent events, a download), only
	// until its head. Default pipeline.DefaultTimeout (30s).
	Timeout time.Duration
	// StreamIdle is how long a streamed call may hear nothing from the
	// callee's agent (it sends keep-alives) before it fails with a
	// timeout. Default wire.DefaultStreamIdle (10s).
	StreamIdle time.Duration
	// TakeWithin is how long a call waits for a sign of life from the
	// instance that got it before it is sent again to the service's
	// queue group (docs/wire.md, "Liveness"). Default
	// wire.DefaultTakeWithin (300ms).
	TakeWithin time.Duration
	// Policies is the live mesh file the gateway applies to the calls it
	// forwards (routes, splits, retries, breakers, allow lists). While it
	// holds no file, a gateway whose connection authenticates
	// (natsconn.Authenticates) answers every request 503 no-mesh-file and
	// is not ready; on an open broker the built-in policy applies
	// meanwhile. Nil applies the built-in policy for good: on an open
	// broker; on a connection that authenticates NewGateway refuses nil
	// (ErrInvalidConfig) unless BuiltinPolicy is set (the edge refuses
	// live.Off there, see EdgeConfig.Policy).
	Policies *live.Source
	// BuiltinPolicy serves with the built-in allow-all policy although
	// the connection authenticates and Policies is nil: the broker's
	// permissions alone decide where the gateway may send. For programs
	// and tests that want exactly that; NewGateway warns about it.
	// Without it, a gateway that authenticates never serves with the
	// built-in policy (docs/security.md, "Fail closed"). It changes
	// nothing when Policies is set or the connection does not
	// authenticate.
	BuiltinPolicy bool
	// Telemetry records the gateway's calls. Nil records none.
	Telemetry *telemetry.Telemetry
	// Middleware is further middleware of the gateway's outbound pipeline,
	// run innermost, after the mesh's own (see package pipeline for the
	// order), the first outermost.
	Middleware []pipeline.OutboundMiddleware
	// Admin adds endpoints to the gateway's admin handler, by pattern
	// ("GET /metrics"); see Gateway.AdminHandler.
	Admin map[string]http.Handler
	// Logger receives one line per request and the server's errors.
	// Default slog.Default().
	Logger *slog.Logger

	// ReadHeaderTimeout bounds the time to read a request's headers, which
	// cuts off slowloris clients. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request, and each wait for its body's
	// bytes: a streamed body (an upload of any size) may take as long as
	// it keeps coming. Default 30s.
	ReadTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its next
	// request. Default 2m.
	IdleTimeout time.Duration
}

// Gateway is the edge of the mesh: an http.Handler that serves outside HTTP
// clients and forwards each request to a meshed service or a NATS endpoint,
// chosen by its route table.
//
// Toward the service, the gateway sets X-Forwarded-For, -Host and -Proto
// (replacing what the client sent) and drops Forwarded; these do not
// count against the client's header limits. A request without a Host
// (HTTP/1.0) reaches a service with Host set to the service's name, as
// behind an agent's bind port, never the address of its upstream.
//
// Routes are tried in this order: routes whose Host matches the request
// (longest PathPrefix first, a host-only route last), then routes without a
// Host (longest PathPrefix first). A request no route matches gets 404 with
// Mesh-Error: no-route. Every request gets exactly one answer: the
// service's, or a mesh error (see [httpwire.WriteError]).
type Gateway struct {
	name    string
	routes  []Route // sorted for matching
	limits  wire.Limits
	timeout time.Duration
	send    *pipeline.Outbound
	proxy   *meshhttp.Proxy // the HTTP adapter: send, with the route table (newProxy)
	log     *slog.Logger

	readHeaderTimeout, readTimeout, idleTimeout time.Duration
	admin                                       http.Handler
	tel                                         *telemetry.Telemetry
	releases                                    *chain.Releases // the pipeline's, released at Shutdown
	id                                          string          // instance ID in discovery
	started                                     time.Time       // when discovery started
	done                                        chan struct{}   // closed when Shutdown has finished
	// requestLevel is the level of the gateway's own line per request:
	// Debug when the telemetry's access log has one already.
	requestLevel slog.Level
	// policies and failClosed: see GatewayConfig.Policies.
	policies   *live.Source
	failClosed bool

	mu       sync.Mutex
	running  bool                 // Start has begun
	closed   bool                 // Shutdown has begun
	disc     *discovery.Responder // set by Start
	servers  []httpServer
	doneOnce sync.Once
}

var _ http.Handler = (*Gateway)(nil)

// NewGateway validates cfg and returns its gateway, which serves once
// started (see [Gateway.Start]). It does not subscribe: that is Start's
// job. Errors wrap ErrInvalidConfig.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	routes, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Conn == nil {
		return nil, fmt.Errorf("bridge: gateway needs a NATS connection: %w", ErrInvalidConfig)
	}
	if err := natsconn.CheckInboxPrefix(cfg.Conn, cfg.Name); err != nil {
		return nil, fmt.Errorf("bridge: %w: %w", err, ErrInvalidConfig)
	}
	authenticates := natsconn.Authenticates(cfg.Conn)
	if cfg.Policies == nil && !cfg.BuiltinPolicy && authenticates {
		return nil, fmt.Errorf("bridge: the connection to the broker authenticates and GatewayConfig.Policies is nil: a gateway that authenticates never serves "+
			"with the built-in allow-all policy; give it the mesh file (live.WatchBucket, live.WatchFile, live.Static), "+
			"or set GatewayConfig.BuiltinPolicy to let the broker's permissions alone decide: %w", ErrInvalidConfig)
	}
	releases := &chain.Releases{}
	failClosed := cfg.Policies != nil && authenticates
	send, err := pipeline.NewOutbound(cfg.Conn, pipeline.OutboundConfig{
		Timeout:    cfg.Timeout,
		MaxTimeout: cfg.Timeout,
		StreamIdle: cfg.StreamIdle,
		TakeWithin: cfg.TakeWithin,
		Middleware: chain.Outbound(chain.Options{Service: cfg.Name, Policies: cfg.Policies, FailClosed: failClosed, Telemetry: cfg.Telemetry,
			Logger: cfg.Logger, Releases: releases}, cfg.Middleware...),
	})
	if err != nil {
		releases.Release()
		return nil, fmt.Errorf("bridge: %w: %w", err, ErrInvalidConfig)
	}
	g := &Gateway{
		name:              cfg.Name,
		routes:            routes,
		limits:            cfg.Limits,
		timeout:           cfg.Timeout,
		send:              send,
		log:               cfg.Logger,
		readHeaderTimeout: cfg.ReadHeaderTimeout,
		readTimeout:       cfg.ReadTimeout,
		idleTimeout:       cfg.IdleTimeout,
		tel:               cfg.Telemetry,
		releases:          releases,
		requestLevel:      slog.LevelInfo,
		policies:          cfg.Policies,
		failClosed:        failClosed,
		done:              make(chan struct{}),
	}
	g.proxy = g.newProxy()
	switch {
	case failClosed:
		if f, _ := cfg.Policies.Current(); f == nil {
			cfg.Logger.Warn("bridge: no mesh file yet: every request is answered 503 " + string(wire.KindNoMeshFile) + " and /readyz is 503 until one is applied " +
				"(natsmesh policy apply); a gateway that authenticates never serves with the built-in allow-all policy")
		}
	case cfg.Policies == nil && authenticates:
		cfg.Logger.Warn("bridge: GatewayConfig.BuiltinPolicy: the built-in policy applies, without allow lists; only the broker's permissions decide where " +
			cfg.Name + " may send")
	}
	if cfg.Telemetry.AccessLogging() {
		g.requestLevel = slog.LevelDebug
	}
	if g.admin, err = admin.New(admin.Config{Ready: g.Readiness, Handlers: cfg.Admin}); err != nil {
		releases.Release()
		return nil, fmt.Errorf("bridge: %w: %w", err, ErrInvalidConfig)
	}
	return g, nil
}

// Validate reports whether cfg is valid apart from its connection: the
// errors NewGateway would return for it, without connecting anywhere.
func (cfg GatewayConfig) Validate() error {
	_, err := cfg.normalize()
	return err
}

// normalize validates cfg, fills in its defaults, and returns the routes in
// matching order.
func (cfg *GatewayConfig) normalize() ([]Route, error) {
	if cfg.Name == "" {
		cfg.Name = "bridge"
	}
	if err := wire.ValidateName("caller", cfg.Name); err != nil {
		return nil, fmt.Errorf("bridge: gateway name: %w: %w", ErrInvalidConfig, err)
	}
	if cfg.Timeout < 0 || cfg.ReadHeaderTimeout < 0 || cfg.ReadTimeout < 0 || cfg.IdleTimeout < 0 {
		return nil, fmt.Errorf("bridge: negative gateway timeout: %w", ErrInvalidConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = pipeline.DefaultTimeout
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var routes []Route
	seen := make(map[string]bool, len(cfg.Routes))
	for _, r := range cfg.Routes {
		if err := r.validate(); err != nil {
			return nil, err
		}
		r.Host = strings.ToLower(r.Host)
		key := r.Host + r.PathPrefix
		if seen[key] {
			return nil, fmt.Errorf("bridge: two routes for %q: %w", key, ErrInvalidConfig)
		}
		seen[key] = true
		routes = append(routes, r)
	}
	// Host routes first, then the longest prefix: the first match wins.
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if (a.Host != "") != (b.Host != "") {
			return a.Host != ""
		}
		return len(a.PathPrefix) > len(b.PathPrefix)
	})
	return routes, nil
}

// Routes returns the route table in matching order.
func (g *Gateway) Routes() []Route { return append([]Route(nil), g.routes...) }

// Match returns the route for a request to host and path (as in r.Host and
// r.URL.Path), or false.
func (g *Gateway) Match(host, path string) (Route, bool) {
	hostOnly := host
	// Without a colon there is no port (and SplitHostPort would make an
	// error to say so, on every request).
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			hostOnly = h
		}
	}
	for _, r := range g.routes {
		if r.Host != "" && !strings.EqualFold(r.Host, host) && !strings.EqualFold(r.Host, hostOnly) {
			continue
		}
		if r.PathPrefix != "" && !hasPathPrefix(path, r.PathPrefix) {
			continue
		}
		return r, true
	}
	return Route{}, false
}

func hasPathPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment.
// Such a path would match one route's prefix and then, once the service
// cleans it, name a path outside that prefix.
func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// ServeHTTP forwards r along its route and writes the answer: the
// gateway's meshhttp.Proxy, whose hooks are the route table (resolve) and
// what the edge changes toward the service (rewrite). Each request is
// counted as the gateway's inbound side (caller "", the outside),
// refusals before any call included, and logged; a streamed answer cut
// midway is then aborted.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	res := g.proxy.Forward(w, r)
	dur := time.Since(start)
	g.tel.ServedHTTP(r.Context(), g.name, res.Status, res.Err, dur)
	g.log.Log(r.Context(), g.requestLevel, "bridge: request", "method", r.Method, "host", r.Host, "path", r.URL.Path,
		"dest", res.Dest.Dest(), "status", res.Status, "duration_ms", float64(dur)/float64(time.Millisecond))
	if res.Cut {
		// A streamed answer failed midway: the client must not take
		// what it got for the whole.
		panic(http.ErrAbortHandler)
	}
}

// newProxy is the gateway's HTTP adapter: its outbound pipeline, its
// name as the caller, the route table as its destinations.
func (g *Gateway) newProxy() *meshhttp.Proxy {
	return &meshhttp.Proxy{Sender: g.send, Caller: g.name, Resolve: g.resolve, Rewrite: g.rewrite, Limits: g.limitsNow, ErrorLog: g.log}
}

// limitsNow are the bounds of a request: the gateway's Limits, with the
// connection's max_payload when they set none.
func (g *Gateway) limitsNow() wire.Limits {
	lim := g.limits
	if lim.MaxPayload <= 0 {
		lim.MaxPayload = g.send.Limits().MaxPayload
	}
	return lim
}

// resolve is the destination of r by the route table: paths with a dot
// segment are refused, a request no route matches is no-route.
func (g *Gateway) resolve(r *http.Request) (pipeline.Call, error) {
	if hasDotSegment(r.URL.Path) {
		return pipeline.Call{}, wire.Errorf(wire.KindBadRequest, "path with a dot segment")
	}
	route, ok := g.Match(r.Host, r.URL.Path)
	if !ok {
		return pipeline.Call{}, wire.Errorf(wire.KindNoRoute, "no route for host %q path %q", r.Host, r.URL.Path)
	}
	return pipeline.Call{Service: route.Service, Subset: route.Subset, Subject: route.Subject}, nil
}

// rewrite is what the edge changes toward the service: the
// X-Forwarded-* headers (which do not count against the client's header
// limits), the service's name as Host when the client sent none, and the
// route's prefix stripped when it says so. Inbound Mesh-* and Nats-*
// headers need no stripping here: the wire format escapes them, so they
// reach the service as its own headers.
func (g *Gateway) rewrite(pr *meshhttp.ProxyRequest) error {
	in, out := pr.In, pr.Out
	// The client's headers are bounded as they came; the ones the gateway
	// sets on its behalf do not count against it.
	if err := httpwire.CheckHeaderLimits(in.Header, pr.Limits); err != nil {
		return err
	}
	pr.Limits.MaxHeaders, pr.Limits.MaxHeaderBytes = pr.Limits.HeadersLimit()+forwardedCount, pr.Limits.HeaderBytesLimit()+forwardedBytes(in)
	out.Header = in.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	setForwarded(out.Header, in)
	dest := pr.Dest()
	if out.Host == "" && dest.Service != "" {
		// HTTP/1.0 without Host, or an empty one: the service sees its
		// own name, as behind a bind port, not its upstream address.
		out.Host = dest.Service
	}
	// The route resolve matched, for its prefix.
	if route, _ := g.Match(in.Host, in.URL.Path); route.StripPrefix {
		u, ok := stripPrefix(in.URL, route.PathPrefix)
		if !ok {
			return wire.Errorf(wire.KindNoRoute, "path %q does not start with %q once escaped", in.URL.EscapedPath(), route.PathPrefix)
		}
		out.URL = u
	}
	return nil
}

// forwardedCount is how many header values setForwarded sets.
const forwardedCount = 3

// forwardedBytes bounds the size of the headers setForwarded sets, as the
// wire format counts them.
func forwardedBytes(r *http.Request) int {
	return len("X-Forwarded-For") + len(r.RemoteAddr) + 4 +
		len("X-Forwarded-Host") + len(r.Host) + 4 +
		len("X-Forwarded-Proto") + len("https") + 4
}

// setForwarded replaces the X-Forwarded-* headers with the gateway's own
// view of the client. The gateway is the edge: values that arrive from
// outside could be anything, so none are kept.
func setForwarded(h http.Header, r *http.Request) {
	h.Del("Forwarded")
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", ip)
	} else {
		h.Del("X-Forwarded-For")
	}
	if r.Host != "" {
		h.Set("X-Forwarded-Host", r.Host)
	} else {
		h.Del("X-Forwarded-Host")
	}
	if r.TLS != nil {
		h.Set("X-Forwarded-Proto", "https")
	} else {
		h.Set("X-Forwarded-Proto", "http")
	}
}

// stripPrefix returns u without prefix, as http.StripPrefix does (the
// escaped path must carry the prefix too), and a path that is at least "/".
func stripPrefix(u *url.URL, prefix string) (*url.URL, bool) {
	p := strings.TrimPrefix(u.Path, prefix)
	rp := strings.TrimPrefix(u.RawPath, prefix)
	if len(p) == len(u.Path) || (u.RawPath != "" && len(rp) == len(u.RawPath)) {
		return nil, false
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
		if rp != "" {
			rp = "/" + rp
		}
	}
	u2 := *u
	u2.Path, u2.RawPath = p, rp
	return &u2, true
}

// Server returns an http.Server for g on addr, hardened for the open
// internet: ReadHeaderTimeout (slowloris), ReadTimeout, a WriteTimeout that
// leaves room for the gateway's Timeout, IdleTimeout, and MaxHeaderBytes from
// the gateway's limits. Without TLS it serves HTTP/2 beside HTTP/1.1 (h2c:
// prior knowledge, and Upgrade: h2c; see package internal/h2c); its
// Shutdown sends the upgraded connections GOAWAY but, as for any hijacked
// connection, does not wait for them, which [Gateway.Serve]'s servers do.
// With tlsConfig set, serve it with ListenAndServeTLS("", "") or ServeTLS.
func (g *Gateway) Server(addr string, tlsConfig *tls.Config) *http.Server {
	return g.server(addr, tlsConfig).Server
}

// server builds the http.Server of [Gateway.Server].
func (g *Gateway) server(addr string, tlsConfig *tls.Config) httpServer {
	hs := &http.Server{
		Addr:              addr,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: g.readHeaderTimeout,
		ReadTimeout:       g.readTimeout,
		// Measured from the end of the request headers: reading the body,
		// the NATS request, and writing the answer; a streamed answer, or
		// the answer to a streamed body, bounds each write instead
		// (meshhttp.Proxy.StreamWriteTimeout).
		WriteTimeout: g.readTimeout + g.timeout + 5*time.Second,
		IdleTimeout:  g.idleTimeout,
		// Go answers "OPTIONS *" itself unless told not to, without
		// calling the handler: the framing guard would lose count.
		DisableGeneralOptionsHandler: true,
		MaxHeaderBytes:               g.limits.HeaderBytesLimit(),
		ErrorLog:                     slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		// Serve it on httpguard.Listen(listener) to refuse requests with
		// both Content-Length and Transfer-Encoding.
		ConnContext: httpguard.ConnContext,
	}
	up := h2c.Enable(hs)
	// Each wait for the body's bytes is bounded like the whole request
	// (ReadTimeout), and a stalled body answered 408 request-timeout.
	hs.Handler = httpguard.Handler(g, httpguard.Options{BodyTimeout: g.readTimeout, H2C: up})
	return httpServer{hs, up}
}
