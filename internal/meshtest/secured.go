package meshtest

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
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
	perms := map[string]string{admin: ""}
	for _, name := range names {
		perms[name] = fmt.Sprintf(`
        publish: { allow: ["mesh.>", "_INBOX_mesh.>", "$SRV.>", "$JS.API.DIRECT.GET.KV_natsmesh-policies.>"] }
        subscribe: { allow: ["mesh.>", "_INBOX_mesh.%s.>", "$SRV.>", "$KV.natsmesh-policies.>"] }
    `, name)
	}
	return UserConfig(t, jetstream, perms)
}

// UserConfig writes a configuration that admits only NKey users, one per
// name of perms with the permissions given there (the inside of a
// nats-server permissions block, `publish: ["a.>"], subscribe: ["b"]`;
// "" for every right), with JetStream on when jetstream is set, into a
// temporary directory of t. Each user's seed is in Seed(name).
func UserConfig(t testing.TB, jetstream bool, perms map[string]string) *Secured {
	t.Helper()
	s := &Secured{Dir: t.TempDir()}
	var users []string
	for _, name := range slices.Sorted(maps.Keys(perms)) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		if err := os.WriteFile(s.Seed(name), seed, 0o600); err != nil {
			t.Fatal(err)
		}
		if perms[name] == "" {
			users = append(users, fmt.Sprintf("    { nkey: %s }", pub))
			continue
		}
		users = append(users, fmt.Sprintf("    { nkey: %s, permissions: {%s} }", pub, perms[name]))
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

// Conn connects to b (see Conn) as the user name, with its NKey.
func (s *Secured) Conn(t testing.TB, b *broker.Broker, name string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	o, err := nats.NkeyOptionFromSeed(s.Seed(name))
	if err != nil {
		t.Fatal(err)
	}
	return Conn(t, b, append([]nats.Option{o}, opts...)...)
}

// Seed is the NKey seed file of the user name.
func (s *Secured) Seed(name string) string { return filepath.Join(s.Dir, name+".nk") }

// Broker starts a broker (see Broker) on the configuration.
func (s *Secured) Broker(t testing.TB, opts ...func(*broker.Config)) *broker.Broker {
	t.Helper()
	return Broker(t, append([]func(*broker.Config){func(c *broker.Config) { c.ConfigFile = s.Conf }}, opts...)...)
}
