package agent

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/natsmesh/natsmesh/internal/upstream"
	"github.com/natsmesh/natsmesh/meshhttp"
)

// parseUpstream reads Config.Upstream (upstream.Parse), its errors
// ErrConfig's.
func parseUpstream(s string) (*url.URL, error) {
	u, err := upstream.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return u, nil
}

// LoadUpstreamTLS is the UpstreamTLS of PEM files: caFile, when set, the
// CA (or CAs) the service's certificate must be signed by, in place of the
// system's roots; certFile and keyFile, both or neither, the client
// certificate for a service that asks for one. What `natsmesh agent`'s
// --upstream-ca, --upstream-cert and --upstream-key read. An unreadable
// file, or a CA file with no certificate, is an ErrConfig.
func LoadUpstreamTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg, err := upstream.LoadTLS(caFile, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cfg, nil
}

// upstreamTransport is the transport to an HTTP upstream: over https, with
// the agent's TLS settings, offering HTTP/2 beside HTTP/1.1 (ALPN), which
// net/http's client speaks when the service chooses it. A protocol
// upgrade (a WebSocket) asks for HTTP/1.1 only: net/http does that itself.
func (a *Agent) upstreamTransport() *http.Transport {
	t := meshhttp.NewUpstreamTransport()
	if a.upstream != nil && upstream.TLS(a.upstream) {
		t.TLSClientConfig = a.tlsConfig()
		t.ForceAttemptHTTP2 = true
	}
	return t
}

// grpcCredentials are the transport credentials of the connection to a
// gRPC upstream: TLS for h2://, none for h2c://.
func (a *Agent) grpcCredentials() credentials.TransportCredentials {
	if upstream.TLS(a.upstream) {
		return credentials.NewTLS(a.tlsConfig())
	}
	return insecure.NewCredentials()
}

// tlsConfig is a copy of Config.UpstreamTLS, or the system's roots.
func (a *Agent) tlsConfig() *tls.Config {
	if a.cfg.UpstreamTLS == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return a.cfg.UpstreamTLS.Clone()
}
