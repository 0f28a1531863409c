package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/httpguard"
	"github.com/natsmesh/natsmesh/meshgrpc"
	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// outbound sends the calls the agent's service makes.
type outbound struct {
	a *Agent

	mu     sync.Mutex
	closed bool
	// stoppers stop the listeners' servers gracefully (http.Server.Shutdown
	// and its gRPC equivalent).
	stoppers []func(context.Context) error
}

func newOutbound(a *Agent) *outbound { return &outbound{a: a} }

// track registers a server's graceful stop for Shutdown; false once shut
// down.
func (o *outbound) track(stop func(context.Context) error) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.stoppers = append(o.stoppers, stop)
	return true
}

func (o *outbound) shutdown(ctx context.Context) error {
	o.mu.Lock()
	o.closed = true
	stoppers := o.stoppers
	o.mu.Unlock()
	var errs []error
	for _, stop := range stoppers {
		errs = append(errs, stop(ctx))
	}
	return errors.Join(errs...)
}

// HTTPProxy returns the outbound HTTP handler, a [meshhttp.Proxy] from this
// agent's service. The destination is the request's host: the absolute-form
// target a client sends to its HTTP proxy (HTTP_PROXY=http://<agent>, then
// GET http://orders/v1/items), or the Host header (Host: orders).
// "v2.orders" names the v2 subset of a service the mesh file declares; a
// mesh domain may follow ("orders.mesh", "v2.orders.mesh" with or without
// a mesh file); a port is ignored. A host that is no mesh service by
// wire.ReadHost's rule ("api.example.com", "127.0.0.1:8080", a name the
// mesh file does not declare) is a call out of the mesh, which the mesh
// file's egress section allows or refuses (package egress), CONNECT
// tunnels among them.
func (a *Agent) HTTPProxy() http.Handler {
	p := a.httpProxy(nil, nil)
	p.Egress, p.Services = a.egress, a.services
	return p
}

// services is the mesh file's list of services, for wire.ReadHost (nil
// without a mesh file), complete when the agent authenticates: the
// broker's permissions then come from the mesh file (natsmesh accounts
// generate), so a name it does not declare has no instance, while an
// open broker may serve services a mesh file does not list.
func (a *Agent) services() (wire.Services, bool) {
	if f := a.meshFile(); f != nil {
		return f, a.failClosed
	}
	return nil, false
}

// BindHandler returns an outbound HTTP handler that sends every request to
// dest (a service, or SUBSET.SERVICE), whatever its host: for clients that
// can set neither a proxy nor a Host header, each destination gets a local
// port of its own. The service sees its own name as the request's Host.
func (a *Agent) BindHandler(dest string) (http.Handler, error) {
	service, subset, err := wire.ParseHost(dest, a.cfg.Domains)
	if err != nil {
		return nil, fmt.Errorf("%w: bind %q: %w", ErrConfig, dest, err)
	}
	to := pipeline.Call{Service: service, Subset: subset}
	return a.httpProxy(
		func(*http.Request) (pipeline.Call, error) { return to, nil },
		func(pr *meshhttp.ProxyRequest) error {
			// The client addressed a local port; the service sees its
			// own name.
			pr.Out.Host = service
			return nil
		}), nil
}

// httpProxy is the agent's meshhttp.Proxy with the given hooks: the
// agent's outbound pipeline, its service as the caller, its domains and
// limits.
func (a *Agent) httpProxy(resolve func(*http.Request) (pipeline.Call, error), rewrite func(*meshhttp.ProxyRequest) error) *meshhttp.Proxy {
	return &meshhttp.Proxy{Sender: a.send, Caller: a.cfg.Service, Resolve: resolve, Domains: a.cfg.Domains, Rewrite: rewrite,
		Limits: a.limitsNow, ErrorLog: a.log}
}

// ServeHTTPProxy serves HTTPProxy on l until Shutdown, over HTTP/1.1 and
// HTTP/2 without TLS (h2c: prior knowledge, or Upgrade: h2c). A gRPC call
// on it (HTTP/2, Content-Type application/grpc) goes to the gRPC proxy's
// handler, routed by its :authority as on ServeGRPCProxy's listener. It
// returns nil after a graceful Shutdown, like http.Server.Serve returns
// ErrServerClosed.
func (a *Agent) ServeHTTPProxy(l net.Listener) error {
	return a.serveHTTP(l, a.HTTPProxy(), a.grpcProxy(nil))
}

// ServeBind serves BindHandler(dest) on l until Shutdown, over HTTP/1.1
// and HTTP/2 without TLS as ServeHTTPProxy does; a gRPC call on it goes to
// the gRPC proxy's handler, to dest whatever its :authority, so a gRPC
// client that can set no authority dials the port alone.
func (a *Agent) ServeBind(l net.Listener, dest string) error {
	h, err := a.BindHandler(dest)
	if err != nil {
		l.Close()
		return err
	}
	service, subset, _ := wire.ParseHost(dest, a.cfg.Domains) // BindHandler parsed it
	return a.serveHTTP(l, h, a.grpcProxy(func(string) (string, string, error) { return service, subset, nil }))
}

// serveHTTP serves h on l as every outbound HTTP listener of the agent
// is served, with the same guard as the edge gateway (internal/httpguard):
// ambiguous framing gets 400 and the connection closed, an Upgrade other
// than h2c 501, a body not sent within Config.BodyTimeout 408, and headers
// over the limit 431 with Mesh-Error: headers-too-large at any size. It
// serves HTTP/2 without TLS beside HTTP/1.1 (internal/h2c), and gRPC
// calls with grpcProxy (meshgrpc.Dispatch).
func (a *Agent) serveHTTP(l net.Listener, h http.Handler, grpcProxy *meshgrpc.Proxy) error {
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		// The mesh's own header limit: past it, Go's server refuses the
		// request before any handler runs, and the guard gives that
		// refusal the mesh's form, so both read the same.
		MaxHeaderBytes: wire.DefaultMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		ConnContext:    httpguard.ConnContext,
		// Go answers "OPTIONS *" itself unless told not to, without calling
		// the handler: the framing guard, which pairs the heads it reads
		// with the requests the handler sees, would lose count.
		DisableGeneralOptionsHandler: true,
	}
	up := h2c.Enable(srv)
	gs := grpc.NewServer(grpcProxy.ServerOptions()...)
	srv.Handler = meshgrpc.Dispatch(gs, httpguard.Handler(h, httpguard.Options{BodyTimeout: a.cfg.BodyTimeout, H2C: up}))
	stop := func(ctx context.Context) error {
		// Idle connections close at once and requests in flight finish
		// (a stalled body within BodyTimeout); HTTP/2 connections get
		// GOAWAY and close once their streams end, the upgraded ones
		// too; if ctx ends first, the rest are closed rather than left to
		// hold up the exit.
		err := srv.Shutdown(ctx)
		if err != nil {
			srv.Close()
		}
		if uerr := up.Shutdown(ctx); err == nil {
			err = uerr
		}
		gs.Stop()
		return err
	}
	if !a.out.track(stop) {
		gs.Stop()
		l.Close()
		return ErrClosed
	}
	if err := srv.Serve(httpguard.Listen(l)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Transport returns an http.RoundTripper that sends requests over the mesh
// from this agent's service, in process, a [meshhttp.Transport]: the URL's
// host names the service (http://orders/v1/items, http://v2.orders/ for a
// subset). Mesh failures come back as responses, exactly as the sidecar
// proxy answers them (a 503 with a Mesh-Error header, and so on), so code
// behaves the same in both modes; only a request that cannot be read at all
// is an error.
func (a *Agent) Transport() http.RoundTripper {
	return &Transport{Sender: a.send, Caller: a.cfg.Service, Domains: a.cfg.Domains, Limits: a.limitsNow}
}

// Transport is the in-process outbound HTTP client side of an agent.
type Transport = meshhttp.Transport

// Handle serves h as this agent's service, in process: inbound HTTP calls go
// to h with no local hop. Call it before Start. An in-process service has no
// health check unless HealthConfig.Check is set.
func (a *Agent) Handle(h http.Handler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.closed {
		return fmt.Errorf("agent: Handle after Start")
	}
	a.in.handler = h
	return nil
}
