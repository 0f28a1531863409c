package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/natsmesh/natsmesh/bridge"
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

// HTTPProxy returns the outbound HTTP handler. The destination service is the
// request's host: the absolute-form target a client sends to its HTTP proxy
// (HTTP_PROXY=http://<agent>, then GET http://orders/v1/items), or the Host
// header (Host: orders). A port in either is ignored.
func (a *Agent) HTTPProxy() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			bridge.WriteHTTPError(w, bridge.Errorf(bridge.KindBadRequest, "CONNECT tunnels are not supported: call http://<service>/ and the mesh secures the hop"))
			return
		}
		host := r.Host
		if r.URL.IsAbs() && r.URL.Host != "" {
			host = r.URL.Host
		}
		service, err := serviceFromHost(host)
		if err != nil {
			bridge.WriteHTTPError(w, err)
			return
		}
		a.forwardHTTP(w, r, service)
	})
}

// BindHandler returns an outbound HTTP handler that sends every request to
// service, whatever its host: for clients that can set neither a proxy nor a
// Host header, each destination gets a local port of its own.
func (a *Agent) BindHandler(service string) (http.Handler, error) {
	if err := bridge.ValidateName("service", service); err != nil {
		return nil, fmt.Errorf("%w: bind: %w", ErrConfig, err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The client addressed a local port; the service sees its own name.
		r.Host = service
		a.forwardHTTP(w, r, service)
	}), nil
}

// ServeHTTPProxy serves HTTPProxy on l until Shutdown. It returns nil after a
// graceful Shutdown, like http.Server.Serve returns ErrServerClosed.
func (a *Agent) ServeHTTPProxy(l net.Listener) error {
	return a.serveHTTP(l, a.HTTPProxy())
}

// ServeBind serves BindHandler(service) on l until Shutdown.
func (a *Agent) ServeBind(l net.Listener, service string) error {
	h, err := a.BindHandler(service)
	if err != nil {
		l.Close()
		return err
	}
	return a.serveHTTP(l, h)
}

func (a *Agent) serveHTTP(l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    bridge.DefaultMaxHeaderBytes + 4096,
		ErrorLog:          nil,
	}
	if !a.out.track(srv.Shutdown) {
		l.Close()
		return ErrClosed
	}
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serviceFromHost reads the destination service from a request host.
func serviceFromHost(host string) (string, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if err := bridge.ValidateName("service", host); err != nil {
		return "", &bridge.Error{Kind: bridge.KindNoRoute, Message: fmt.Sprintf("%q is not a mesh service name", host)}
	}
	return host, nil
}

func (a *Agent) forwardHTTP(w http.ResponseWriter, r *http.Request, service string) {
	resp, err := a.roundTrip(r, service)
	if err != nil {
		bridge.WriteHTTPError(w, err)
		return
	}
	bridge.WriteHTTPResponse(w, resp)
}

// roundTrip sends one HTTP call to service over NATS. Mesh failures come back
// as *bridge.Error.
func (a *Agent) roundTrip(r *http.Request, service string) (*http.Response, error) {
	ctx := r.Context()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	subject := bridge.Subject{Service: service, Caller: a.cfg.Service, Proto: bridge.ProtoHTTP, Op: r.Method}.String()
	m, err := bridge.EncodeHTTPRequest(r, subject, a.limitsNow())
	if err != nil {
		return nil, err
	}
	reply, err := a.request(ctx, m)
	if err != nil {
		return nil, err
	}
	return bridge.DecodeHTTPResponse(reply)
}

// Transport returns an http.RoundTripper that sends requests over the mesh
// from this agent's service, in process: the URL's host names the service
// (http://orders/v1/items). Mesh failures come back as responses, exactly as
// the sidecar proxy answers them (a 503 with a Mesh-Error header, and so on),
// so code behaves the same in both modes; only a request that cannot be read
// at all is an error.
func (a *Agent) Transport() http.RoundTripper { return &Transport{a: a} }

// Transport is the in-process outbound HTTP client side of an agent.
type Transport struct{ a *Agent }

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil {
		closeBody(r)
		return nil, errors.New("agent: request has no URL")
	}
	host := r.URL.Host
	if host == "" {
		host = r.Host
	}
	service, err := serviceFromHost(host)
	if err != nil {
		closeBody(r)
		return errorResponse(r, err), nil
	}
	resp, err := t.a.roundTrip(r, service)
	if err != nil {
		return errorResponse(r, err), nil
	}
	resp.Request = r
	return resp, nil
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// errorResponse is the response a mesh error makes, as the sidecar proxy
// writes it.
func errorResponse(r *http.Request, err error) *http.Response {
	resp := bridge.HTTPErrorResponse(err)
	resp.Request = r
	return resp
}

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
