package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/natsmesh/natsmesh/internal/httpguard"
)

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("bridge: gateway shut down")

// Serve serves the gateway on l until Shutdown, over TLS when tlsConfig is
// set, with the settings of [Gateway.Server] and the framing guard
// (httpguard: ambiguous framing gets 400 and the connection closed). It
// returns nil after Shutdown, and ErrClosed when called after it. The guard sees the bytes Go's HTTP parser
// sees: over TLS the decrypted ones, so TLS clients speak HTTP/1.1.
func (g *Gateway) Serve(l net.Listener, tlsConfig *tls.Config) error {
	srv := g.Server(l.Addr().String(), tlsConfig)
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

// Shutdown stops the servers Serve runs: they stop accepting, finish the
// requests in flight (each bounded by the gateway's Timeout), and close;
// then the gateway stops answering discovery and sending calls (its
// outbound pipeline is closed). It is safe to call more than once.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	servers := g.servers
	g.servers = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(servers)+1)
	for i, srv := range servers {
		wg.Go(func() { errs[i] = srv.Shutdown(ctx) })
	}
	wg.Wait()
	errs[len(servers)] = g.disc.Stop()
	// Its reply muxes: calls still waiting fail, later ones are refused.
	errs = append(errs, g.send.Close())
	g.releases.Release() // its breakers leave the metrics
	return errors.Join(errs...)
}

// AdminHandler serves the gateway's admin endpoint, for a load balancer or
// an orchestrator: /healthz (liveness), /readyz (ready while the NATS
// connection is up and the gateway is not shutting down), /debug/pprof/,
// and the endpoints of GatewayConfig.Admin.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

func (g *Gateway) readiness() error {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return errors.New("shutting down")
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
