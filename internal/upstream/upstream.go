package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Forms is what an upstream's address must look like, for the errors.
const Forms = "want http://HOST:PORT[/BASE-PATH] or https://... for HTTP, h2c://HOST:PORT or h2://HOST:PORT (TLS) for gRPC"

// Parse reads an upstream's address: http://HOST:PORT with an optional
// base path that every call's path is appended to, https:// the same over
// TLS, or h2c://HOST:PORT for gRPC (h2:// over TLS), which has no base
// path. Anything else is refused with why and the forms that are accepted
// ([Forms]), rather than net/url's own words ("first path segment in URL
// cannot contain colon" for a bare 127.0.0.1:8080); the error's text
// starts with the address, quoted.
func Parse(s string) (*url.URL, error) {
	bad := func(why string) error {
		return fmt.Errorf("upstream %q: %s: %s", s, why, Forms)
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
	case GRPC(u) && strings.Trim(u.Path, "/") != "":
		return nil, bad("gRPC has no base path")
	}
	return u, nil
}

// LoadTLS is the TLS settings of PEM files for reaching an upstream:
// caFile, when set, the CA (or CAs) the service's certificate must be
// signed by, in place of the system's roots; certFile and keyFile, both or
// neither, the client certificate for a service that asks for one. An
// unreadable file, or a CA file with no certificate, is an error.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("the upstream's client certificate needs both a certificate and a key file")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("upstream CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA %s: no PEM certificate in it", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// GRPC reports whether u is a gRPC upstream (h2c:// or h2://).
func GRPC(u *url.URL) bool { return u.Scheme == "h2c" || u.Scheme == "h2" }

// TLS reports whether u speaks TLS (https:// or h2://).
func TLS(u *url.URL) bool { return u.Scheme == "https" || u.Scheme == "h2" }

// Connect checks that u accepts a TCP connection; one that speaks TLS,
// that it completes a handshake cfg accepts (cfg is the caller's to
// change: Connect sets its NextProtos to what the service's kind offers),
// so a CA that did not sign its certificate fails the check, saying so,
// and the service does not log a handshake cut short at every check.
func Connect(ctx context.Context, u *url.URL, cfg *tls.Config) error {
	var d net.Dialer
	if TLS(u) {
		cfg.NextProtos = []string{"h2"} // what a gRPC (h2://) server asks for
		if !GRPC(u) {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		c, err := (&tls.Dialer{NetDialer: &d, Config: cfg}).DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return fmt.Errorf("upstream %s: %w", u.Redacted(), err)
		}
		return c.Close()
	}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	return c.Close()
}

// Get checks u's path with a GET through rt: a 2xx or 3xx answer is
// healthy. It uses RoundTrip, not a Client: a redirect is an answer, not
// something to follow.
func Get(ctx context.Context, rt http.RoundTripper, u *url.URL, path string) error {
	target := url.URL{Scheme: u.Scheme, Host: u.Host, Path: path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "natsmesh-health")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("upstream %s: %w", u.Redacted(), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// ErrNoHealthProtocol is GRPCHealth's answer for a server that does not
// implement grpc.health.v1: it answered, so it is up, but it says nothing
// of its health.
var ErrNoHealthProtocol = errors.New("the service does not implement grpc.health.v1")

// GRPCHealth asks cc's grpc.health.v1.Health/Check for service ("" for
// the server as a whole): nil for SERVING, ErrNoHealthProtocol for a
// server without the protocol, else why not.
func GRPCHealth(ctx context.Context, cc grpc.ClientConnInterface, service string) error {
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(false))
	if status.Code(err) == codes.Unimplemented {
		return ErrNoHealthProtocol
	}
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc health: %s", resp.GetStatus())
	}
	return nil
}

// Alive asks the service at u to answer anything: an HTTP service OPTIONS *
// (RFC 9110's request of the server itself, which Go's server answers
// without a handler) through rt, on a connection of its own; a gRPC one
// (cc) the health check, whose every answer but a timeout or unavailable
// is life.
func Alive(ctx context.Context, u *url.URL, rt http.RoundTripper, cc func() (grpc.ClientConnInterface, error)) error {
	if GRPC(u) {
		conn, err := cc()
		if err != nil {
			return err
		}
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
		switch status.Code(err) {
		case codes.DeadlineExceeded, codes.Unavailable, codes.Canceled:
			return err
		}
		return nil
	}
	scheme := "http"
	if u.Scheme == "https" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, scheme+"://"+u.Host, nil)
	if err != nil {
		return err
	}
	req.URL = &url.URL{Scheme: scheme, Host: u.Host, Opaque: "*"}
	req.Header.Set("User-Agent", "natsmesh-health")
	req.Close = true // a connection of its own, not left idle in the pool
	resp, err := rt.RoundTrip(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("OPTIONS * unanswered within the check's timeout")
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return nil
}
