package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/natsmesh/natsmesh/internal/admin"
	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/httpguard"
)

// ErrClosed is returned by Serve, Start and Ready after Shutdown.
var ErrClosed = errors.New("bridge: gateway shut down")

// Serve serves the gateway on l until Shutdown, over TLS when tlsConfig is
// set, with the settings of [Gateway.Server] and the framing guard
// (httpguard: ambiguous framing gets 400 and the connection closed). It
// returns nil after Shutdown, and ErrClosed when called after it. The guard sees the bytes Go's HTTP parser
// sees: over TLS the decrypted ones, so TLS clients speak HTTP/1.1; without
// TLS, clients speak HTTP/1.1 or HTTP/2 (h2c).
func (g *Gateway) Serve(l net.Listener, tlsConfig *tls.Config) error {
	srv := g.server(l.Addr().String(), tlsConfig)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	g.servers = append(g.servers, srv)
	g.mu.Unlock()
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	if err := srv.Serve(httpguard.Listen(l)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// httpServer is a gateway's HTTP server and its connections upgraded to
// HTTP/2, which http.Server no longer tracks.
type httpServer struct {
	*http.Server
	h2c *h2c.Server
}

// shutdown shuts srv down gracefully, its upgraded connections too.
func (srv httpServer) shutdown(ctx context.Context) error {
	err := srv.Shutdown(ctx)
	if herr := srv.h2c.Shutdown(ctx); err == nil {
		err = herr
	}
	return err
}

// Start answers discovery as the service named like the gateway
// ($SRV.PING, $SRV.INFO, $SRV.STATS, as nats.go/micro services do). It
// does not block, and ctx bounds only the start. The gateway serves
// requests without it (ServeHTTP, Serve), but it is ready (Readiness) and
// discoverable only once started. Start after Shutdown returns ErrClosed;
// a second Start does nothing.
func (g *Gateway) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	switch {
	case g.closed:
		g.mu.Unlock()
		return ErrClosed
	case g.running:
		g.mu.Unlock()
		return nil
	}
	g.running = true
	g.mu.Unlock()
	disc, err := g.startDiscovery(g.send.Conn())
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed { // Shutdown came meanwhile: it found no responder to stop
		disc.Stop()
		return ErrClosed
	}
	g.disc = disc
	return nil
}

// Ready waits until the gateway is ready (see Readiness), or returns why
// it is not after timeout, or ErrClosed once it has shut down.
func (g *Gateway) Ready(timeout time.Duration) error {
	switch err := admin.WaitReady(timeout, g.done, g.Readiness); {
	case errors.Is(err, admin.ErrDone):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("bridge: gateway %s not ready after %v: %w", g.name, timeout, err)
	}
	return nil
}

// Shutdown stops the servers Serve runs: they stop accepting, finish the
// requests in flight (each bounded by the gateway's Timeout), and close,
// HTTP/2 connections once their clients have had GOAWAY and their streams
// have ended;
// then the gateway stops answering discovery and sending calls (its
// outbound pipeline is closed). It is safe to call more than once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	servers, disc := g.servers, g.disc
	g.servers, g.disc = nil, nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(servers)+1)
	for i, srv := range servers {
		wg.Go(func() { errs[i] = srv.shutdown(ctx) })
	}
	wg.Wait()
	if disc != nil {
		errs[len(servers)] = disc.Stop()
	}
	// Its reply muxes: calls still waiting fail, later ones are refused.
	errs = append(errs, g.send.Close())
	g.releases.Release() // its breakers leave the metrics
	g.doneOnce.Do(func() { close(g.done) })
	return errors.Join(errs...)
}

// AdminHandler serves the gateway's admin endpoint, for a load balancer or
// an orchestrator: /healthz (liveness), /readyz (see Readiness),
// /debug/pprof/, and the endpoints of GatewayConfig.Admin.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

// Readiness returns nil while the gateway takes requests, and otherwise
// why not: not started, shutting down, no NATS connection, or no mesh
// file yet (a gateway that authenticates, see GatewayConfig.Policies).
func (g *Gateway) Readiness() error {
	g.mu.Lock()
	running, closed := g.running, g.closed
	g.mu.Unlock()
	switch {
	case closed:
		return errors.New("shutting down")
	case !running:
		return errors.New("not started")
	}
	if !g.send.Conn().IsConnected() {
		return errors.New("no connection to the NATS broker")
	}
	if g.failClosed {
		if f, _ := g.policies.Current(); f == nil {
			return errors.New("no mesh file yet: the store has none or cannot be reached, and none is kept on disk (natsmesh policy apply)")
		}
	}
	return nil
}
