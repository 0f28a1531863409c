package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/testcert"
	"github.com/natsmesh/natsmesh/wire"
)

// tlsParty is a certificate of internal/testcert (its own CA).
type tlsParty struct{ certFile, keyFile string }

func newTLSParty(t *testing.T) tlsParty {
	t.Helper()
	c, k := testcert.SelfSigned(t)
	return tlsParty{c, k}
}

// serverTLS is a service's TLS: its certificate, and when client is set,
// a client certificate signed by client's CA required (mutual TLS).
func (p tlsParty) serverTLS(t *testing.T, client *tlsParty) *tls.Config {
	ca := ""
	if client != nil {
		ca = client.certFile
	}
	return testcert.ServerTLS(t, p.certFile, p.keyFile, ca)
}

// TestUpstreamOverTLS: an https:// upstream with its CA serves meshed
// calls over HTTP/1.1, or HTTP/2 when the service offers it (ALPN); a
// service that requires a client certificate answers one that has it and
// fails, with an upstream error naming it, one that has none; a CA that
// did not sign the service's certificate is an upstream error naming the
// upstream and the reason (with health checks off: the default check
// sees it first, TestTLSUpstreamHealth) (issue 19: "scheme must be http
// or h2c" before).
func TestUpstreamOverTLS(t *testing.T) {
	b := meshtest.Broker(t)
	srvCert, clientCert, otherCA := newTLSParty(t), newTLSParty(t), newTLSParty(t)
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport(), Timeout: 20 * time.Second}

	for _, tc := range []struct {
		name       string
		h2, mutual bool   // the service offers HTTP/2; it requires a client certificate
		ca         string // the CA file the agent verifies with
		client     bool   // the agent presents clientCert
		want       string // the protocol the service saw, or "" for an error
		wantErr    []string
	}{
		{name: "http1", ca: srvCert.certFile, want: "HTTP/1.1"},
		{name: "http2", h2: true, ca: srvCert.certFile, want: "HTTP/2.0"},
		{name: "mutual", h2: true, mutual: true, ca: srvCert.certFile, client: true, want: "HTTP/2.0 client=natsmesh test"},
		{name: "mutual-no-cert", mutual: true, ca: srvCert.certFile, wantErr: []string{"certificate required"}},
		{name: "wrong-ca", ca: otherCA.certFile, wantErr: []string{"x509: certificate signed by unknown authority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				who := r.Proto
				if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
					who += " client=" + r.TLS.PeerCertificates[0].Subject.CommonName
				}
				fmt.Fprint(w, who)
			}))
			var client *tlsParty
			if tc.mutual {
				client = &clientCert
			}
			srv.TLS = srvCert.serverTLS(t, client)
			srv.EnableHTTP2 = tc.h2
			srv.StartTLS()
			t.Cleanup(srv.Close)

			var cert, key string
			if tc.client {
				cert, key = clientCert.certFile, clientCert.keyFile
			}
			tlsCfg, err := LoadUpstreamTLS(tc.ca, cert, key)
			if err != nil {
				t.Fatal(err)
			}
			service := "tls-" + tc.name
			startAgent(t, b, Config{Service: service, Upstream: srv.URL, UpstreamTLS: tlsCfg, Health: HealthConfig{Disabled: tc.name == "wrong-ca"}})
			resp, err := c.Get("http://" + service + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.want != "" {
				if resp.StatusCode != 200 || string(body) != tc.want {
					t.Fatalf("%d %q, want 200 %q", resp.StatusCode, body, tc.want)
				}
				return
			}
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(wire.HeaderError) != string(wire.KindUpstream) {
				t.Fatalf("%d %s %q, want 502 %s", resp.StatusCode, resp.Header.Get(wire.HeaderError), body, wire.KindUpstream)
			}
			for _, want := range append(tc.wantErr, "local service "+srv.URL) {
				if !strings.Contains(string(body), want) {
					t.Errorf("the error %q does not say %q", body, want)
				}
			}
		})
	}
}

// TestGRPCUpstreamOverTLS: an h2:// upstream, a gRPC server over TLS that
// requires a client certificate, serves meshed calls (its health checked
// over TLS too, by the gRPC health protocol or a handshake).
func TestGRPCUpstreamOverTLS(t *testing.T) {
	b := meshtest.Broker(t)
	srvCert, clientCert := newTLSParty(t), newTLSParty(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvCert.serverTLS(t, &clientCert))))
	testpb.RegisterTestServiceServer(srv, &testService{name: "tls"})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	tlsCfg, err := LoadUpstreamTLS(srvCert.certFile, clientCert.certFile, clientCert.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, b, Config{Service: "orders", Upstream: "h2://" + l.Addr().String(), UpstreamTLS: tlsCfg,
		Health: HealthConfig{GRPC: GRPCHealthProtocol}})
	// A TLS handshake as grpc-go's server wants it (ALPN h2) passes the
	// connect check too.
	startAgent(t, b, Config{Service: "orders-connect", Upstream: "h2://" + l.Addr().String(), UpstreamTLS: tlsCfg,
		Health: HealthConfig{GRPC: GRPCHealthConnect}})
	web := startAgent(t, b, Config{Service: "web"})
	cc, err := web.ClientConn("orders")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload().GetBody()) != "ping" {
		t.Fatalf("payload %q", resp.GetPayload().GetBody())
	}
}

// TestUpstreamTLSConfig: TLS settings for a cleartext upstream, or none,
// are refused; LoadUpstreamTLS refuses half a client certificate and a CA
// file without a certificate.
func TestUpstreamTLSConfig(t *testing.T) {
	ca := newTLSParty(t)
	notPEM := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"cleartext upstream", func() error {
			return Config{Service: "orders", Upstream: "http://127.0.0.1:8080", UpstreamTLS: &tls.Config{}}.Validate()
		}, `upstream "http://127.0.0.1:8080" is cleartext, but TLS settings are given`},
		{"no upstream", func() error { return Config{Service: "orders", UpstreamTLS: &tls.Config{}}.Validate() }, "TLS settings for the upstream, but no upstream"},
		{"cert without key", func() error { _, err := LoadUpstreamTLS("", ca.certFile, ""); return err }, "needs both a certificate and a key"},
		{"CA not PEM", func() error { _, err := LoadUpstreamTLS(notPEM, "", ""); return err }, "no PEM certificate"},
		{"CA missing", func() error { _, err := LoadUpstreamTLS(notPEM+".none", "", ""); return err }, "upstream CA: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an ErrConfig saying %q", err, tc.want)
			}
		})
	}
}

// TestWebSocketToTLSUpstream: a WebSocket reaches an https:// upstream
// that also offers HTTP/2: the upgrade goes over HTTP/1.1 (WebSocket has
// no HTTP/2 form here), and messages cross both ways.
func TestWebSocketToTLSUpstream(t *testing.T) {
	b := meshtest.Broker(t)
	srvCert := newTLSParty(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, append([]byte(r.Proto+" "), msg...)) != nil {
				return
			}
		}
	}))
	srv.TLS = srvCert.serverTLS(t, nil)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tlsCfg, err := LoadUpstreamTLS(srvCert.certFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, b, Config{Service: "orders", Upstream: srv.URL, UpstreamTLS: tlsCfg})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeHTTPProxy)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://orders/ws", &websocket.DialOptions{HTTPClient: proxyClient(proxy)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		msg := fmt.Sprintf("message %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "HTTP/1.1 "+msg {
			t.Fatalf("echo %q, %v; want %q", got, err, "HTTP/1.1 "+msg)
		}
	}
	c.Close(websocket.StatusNormalClosure, "done")
}

// TestTLSUpstreamHealth: the default health check of an https:// upstream
// completes a TLS handshake: with a CA that did not sign the service's
// certificate the instance is not ready, and says why, naming the
// upstream; with the right one it is.
func TestTLSUpstreamHealth(t *testing.T) {
	b := meshtest.Broker(t)
	srvCert, otherCA := newTLSParty(t), newTLSParty(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = srvCert.serverTLS(t, nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	wrong, err := LoadUpstreamTLS(otherCA.certFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("orders"))),
		Config{Service: "orders", Upstream: srv.URL, UpstreamTLS: wrong, Logger: quiet, Health: HealthConfig{Interval: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	err = a.Ready(time.Second)
	if err == nil || !strings.Contains(err.Error(), "upstream "+srv.URL) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("Ready with the wrong CA: %v, want not ready, naming the upstream and the reason", err)
	}
	right, err := LoadUpstreamTLS(srvCert.certFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, b, Config{Service: "orders", Upstream: srv.URL, UpstreamTLS: right}) // ready, or it fails
}
