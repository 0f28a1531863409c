package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/batchconn"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestValidate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		name, service string
		cfg           Config
		want          string // "" for valid
		files         bool   // only Validate sees it: it reads files
	}{
		{"zero", "web", Config{}, "", false},
		{"bad service", "Web", Config{}, `service name "Web"`, false},
		{"creds and nkey", "web", Config{Creds: "a", NKey: "b"}, "exclusive", false},
		{"half a client cert", "web", Config{TLSCert: "c"}, "go together", false},
		{"no creds file", "web", Config{Creds: missing}, "credentials:", true},
		{"no seed file", "web", Config{NKey: missing}, "NKey seed", true},
		{"no CA file", "web", Config{TLSCA: missing}, "TLS CA:", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Check is Validate without the files.
			if err := tc.cfg.Check(tc.service); (err == nil) != (tc.want == "" || tc.files) {
				t.Errorf("Check = %v", err)
			}
			err := tc.cfg.Validate(tc.service)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want a *ConfigError containing %q", err, tc.want)
			}
		})
	}
	if err := (Config{}).Validate("Web"); !errors.Is(err, wire.ErrInvalidName) {
		t.Fatalf("a bad name: %v, want wire.ErrInvalidName", err)
	}
}

// TestConnectClose: Connect sets the inbox prefix; Close drains and
// closes, and closes at once a connection that has lost its server.
func TestConnectClose(t *testing.T) {
	b := meshtest.Broker(t)
	nc, err := Connect(context.Background(), "web", Config{URL: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckInboxPrefix(nc, "web"); err != nil {
		t.Fatal(err)
	}
	if err := CheckInboxPrefix(nc, "orders"); err == nil {
		t.Fatal("CheckInboxPrefix accepted another service's connection")
	}
	// A burst of messages leaves in one write (decision 183).
	if _, ok := nc.Opts.CustomDialer.(batchconn.Dialer); !ok {
		t.Fatalf("the connection's dialer is %T, want a batchconn.Dialer", nc.Opts.CustomDialer)
	}
	if err := nc.Publish("hello", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := Close(context.Background(), nc); err != nil || !nc.IsClosed() {
		t.Fatalf("Close = %v, closed %v", err, nc.IsClosed())
	}
	if err := Close(context.Background(), nc); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	nc, err = Connect(context.Background(), "web", Config{URL: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	b.Shutdown(context.Background())
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if nc.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	if err := Close(context.Background(), nc); err != nil || !nc.IsClosed() {
		t.Fatalf("Close without a server = %v, closed %v", err, nc.IsClosed())
	}
}

// TestConnectSaysItWaits (issue 21, item 8): an agent that cannot reach
// its broker says where it connects at once, and that it is still trying
// while it retries, with the reason, before it gives up.
func TestConnectSaysItWaits(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	var buf meshtest.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	_, err = Connect(context.Background(), "web", Config{URL: "nats://" + addr, Timeout: 4500 * time.Millisecond, Logger: log})
	if err == nil {
		t.Fatal("connected to nothing")
	}
	out := buf.String()
	if !strings.Contains(out, "connecting to NATS") || !strings.Contains(out, addr) {
		t.Errorf("no line saying where it connects:\n%s", out)
	}
	if n := strings.Count(out, "still connecting to NATS"); n < 2 {
		t.Errorf("%d lines saying it still tries in 4.5s, want 2:\n%s", n, out)
	}
}
