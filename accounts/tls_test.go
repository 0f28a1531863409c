package accounts

import (
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/testcert"
)

// TestGenerateTLS: with WithTLS the generated configuration serves clients
// over mutual TLS only, on a stock nats-server and on the broker.
func TestGenerateTLS(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	dir := t.TempDir()
	if err := Generate(testSpec(), dir, WithTLS(TLS{CertFile: cert, KeyFile: key, CAFile: cert})); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(ConfigFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "verify: true") {
		t.Fatalf("no mutual TLS in\n%s", conf)
	}
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			url := k.run(t, ConfigFile(dir))
			nk, err := nats.NkeyOptionFromSeed(SeedFile(dir, "web"))
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(url, nk, nats.RootCAs(cert), nats.ClientCert(cert, key), nats.NoReconnect())
			if err != nil {
				t.Fatalf("NKey and client certificate: %v", err)
			}
			if !nc.TLSRequired() {
				t.Error("not TLS")
			}
			nc.Close()
			if nc, err := nats.Connect(url, nk, nats.RootCAs(cert), nats.NoReconnect()); err == nil {
				nc.Close()
				t.Fatal("connected without a client certificate")
			}
			if nc, err := nats.Connect(url, nk, nats.NoReconnect()); err == nil {
				nc.Close()
				t.Fatal("connected in plain text")
			}
		})
	}
	if err := Generate(testSpec(), t.TempDir(), WithTLS(TLS{CertFile: cert})); err == nil {
		t.Error("TLS without a key accepted")
	}
}
