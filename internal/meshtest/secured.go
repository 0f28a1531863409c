package meshtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/natsmesh/natsmesh/broker"
)

// Secured is a broker configuration, written by hand, that admits only
// NKey users: an admin with every right (the policy store's writer), and
// one user per service name with what a service has in the reply model
// (docs/security.md): its calls, inboxes and discovery, and of JetStream
// only the policy store's reads, subscribing to the bucket's writes and
// asking for its current version by direct get.
type Secured struct {
	// Dir holds the configuration (nats.conf) and the seed files.
	Dir string
	// Conf is the configuration file, for broker.Config.ConfigFile.
	Conf string
}

// SecureConfig writes a Secured configuration for admin and names, with
// JetStream on when jetstream is set, into a temporary directory of t.
func SecureConfig(t testing.TB, jetstream bool, admin string, names ...string) *Secured {
	t.Helper()
	s := &Secured{Dir: t.TempDir()}
	var users []string
	for i, name := range append([]string{admin}, names...) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		if err := os.WriteFile(s.Seed(name), seed, 0o600); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			users = append(users, fmt.Sprintf("    { nkey: %s }", pub))
			continue
		}
		users = append(users, fmt.Sprintf(`    { nkey: %s, permissions: {
        publish: { allow: ["mesh.>", "_INBOX_mesh.>", "$SRV.>", "$JS.API.DIRECT.GET.KV_natsmesh-policies.>"] }
        subscribe: { allow: ["mesh.>", "_INBOX_mesh.%s.>", "$SRV.>", "$KV.natsmesh-policies.>"] }
    } }`, pub, name))
	}
	conf := "authorization {\n  users = [\n" + strings.Join(users, "\n") + "\n  ]\n}\n"
	if jetstream {
		conf = "jetstream: enabled\n" + conf
	}
	s.Conf = filepath.Join(s.Dir, "nats.conf")
	if err := os.WriteFile(s.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Seed is the NKey seed file of the user name.
func (s *Secured) Seed(name string) string { return filepath.Join(s.Dir, name+".nk") }

// Broker starts a broker (see Broker) on the configuration.
func (s *Secured) Broker(t testing.TB, opts ...func(*broker.Config)) *broker.Broker {
	t.Helper()
	return Broker(t, append([]func(*broker.Config){func(c *broker.Config) { c.ConfigFile = s.Conf }}, opts...)...)
}
