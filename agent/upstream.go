package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/natsmesh/natsmesh/meshhttp"
)

// upstreamForms is what an upstream must look like, for the errors.
const upstreamForms = "want http://HOST:PORT[/BASE-PATH] or https://... for HTTP, h2c://HOST:PORT or h2://HOST:PORT (TLS) for gRPC"

// parseUpstream reads Config.Upstream: http://HOST:PORT with an optional
// base path that every call's path is appended to (meshhttp.Upstream),
// https:// the same over TLS, or h2c://HOST:PORT for gRPC (h2:// over
// TLS), which has no base path. Anything else is refused with the forms
// that are accepted, rather than net/url's own words ("first path segment
// in URL cannot contain colon" for a bare 127.0.0.1:8080).
func parseUpstream(s string) (*url.URL, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: upstream %q: %s: %s", ErrConfig, s, why, upstreamForms)
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return nil, bad("no scheme")
	}
	switch scheme {
	case "http", "https", "h2c", "h2":
	default:
		return nil, bad("scheme must be http, https, h2c or h2")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the input we already quote
		}
		return nil, bad(err.Error())
	}
	switch {
	case u.Host == "" || u.Port() == "":
		return nil, bad("no host:port")
	case u.User != nil:
		return nil, bad("no user information allowed")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, bad("no query or fragment allowed")
	case upstreamGRPC(u) && strings.Trim(u.Path, "/") != "":
		return nil, bad("gRPC has no base path")
	}
	return u, nil
}

// upstreamGRPC reports whether u is a gRPC upstream (h2c:// or h2://).
func upstreamGRPC(u *url.URL) bool { return u.Scheme == "h2c" || u.Scheme == "h2" }

// upstreamTLS reports whether u speaks TLS (https:// or h2://).
func upstreamTLS(u *url.URL) bool { return u.Scheme == "https" || u.Scheme == "h2" }

// LoadUpstreamTLS is the UpstreamTLS of PEM files: caFile, when set, the
// CA (or CAs) the service's certificate must be signed by, in place of the
// system's roots; certFile and keyFile, both or neither, the client
// certificate for a service that asks for one. What `natsmesh agent`'s
// --upstream-ca, --upstream-cert and --upstream-key read. An unreadable
// file, or a CA file with no certificate, is an ErrConfig.
func LoadUpstreamTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: the upstream's client certificate needs both a certificate and a key file", ErrConfig)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: upstream CA: %w", ErrConfig, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: upstream CA %s: no PEM certificate in it", ErrConfig, caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: upstream client certificate: %w", ErrConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// upstreamTransport is the transport to an HTTP upstream: over https, with
// the agent's TLS settings, offering HTTP/2 beside HTTP/1.1 (ALPN), which
// net/http's client speaks when the service chooses it. A protocol
// upgrade (a WebSocket) asks for HTTP/1.1 only: net/http does that itself.
func (a *Agent) upstreamTransport() *http.Transport {
	t := meshhttp.NewUpstreamTransport()
	if a.upstream != nil && upstreamTLS(a.upstream) {
		t.TLSClientConfig = a.tlsConfig()
		t.ForceAttemptHTTP2 = true
	}
	return t
}

// grpcCredentials are the transport credentials of the connection to a
// gRPC upstream: TLS for h2://, none for h2c://.
func (a *Agent) grpcCredentials() credentials.TransportCredentials {
	if upstreamTLS(a.upstream) {
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
