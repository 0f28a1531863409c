package natsconn

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
