package accounts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/natsmesh/natsmesh/wire"
)

func connectCreds(t *testing.T, url, dir, user string, opts ...nats.Option) *client {
	t.Helper()
	return connect(t, url, user, append([]nats.Option{nats.UserCredentials(CredsFile(dir, user))}, opts...)...)
}

func TestOperatorMode(t *testing.T) {
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			dir := generated(t, testSpec(), WithOperator())
			url := k.run(t, ConfigFile(dir))
			testPermissions(t, url, func(t *testing.T, user string) *client { return connectCreds(t, url, dir, user) })
		})
	}
}

func TestOperatorFiles(t *testing.T) {
	dir := generated(t, testSpec(), WithOperator())
	for _, f := range []string{
		CredsFile(dir, "orders"), SeedFile(dir, "orders"), CredsFile(dir, SysUser),
		operatorSeedFile(dir), accountSeedFile(dir, DefaultAccount), accountSeedFile(dir, SystemAccount),
	} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
	seed := func() string {
		b, err := os.ReadFile(SeedFile(dir, "orders"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := seed()
	if err := Generate(testSpec(), dir, WithOperator()); err != nil {
		t.Fatal(err)
	}
	if seed() != before {
		t.Fatal("orders' key changed on rerun")
	}
	if err := Generate(testSpec(), dir, WithOperator(), WithRotate("orders")); err != nil {
		t.Fatal(err)
	}
	if seed() == before {
		t.Fatal("orders' key kept despite rotate")
	}
}

func TestRevoke(t *testing.T) {
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			dir := generated(t, testSpec(), WithOperator())
			url := k.run(t, ConfigFile(dir))
			closed := make(chan struct{})
			orders := connectCreds(t, url, dir, "orders", nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			web := connectCreds(t, url, dir, "web")
			serve(t, orders, "orders", "")
			subj := call("orders", "", "web", wire.ProtoHTTP, "GET")
			if _, err := callVia(t, web, "web", "orders", subj, nil); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := Revoke(ctx, dir, "orders", url); err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("revoked user still connected")
			}
			// The server sends "-ERR 'User Authentication Revoked'"
			// before it closes: the error handler sees it (ahead of the
			// closed handler), whatever LastError says after the EOF.
			if err := orders.LastError(); !errors.Is(err, nats.ErrAuthRevoked) &&
				!slices.ContainsFunc(orders.errors(), func(e error) bool { return errors.Is(e, nats.ErrAuthRevoked) }) {
				t.Fatalf("revoked connection: last error %v, async errors %v; want %v", err, orders.errors(), nats.ErrAuthRevoked)
			}
			nc, err := nats.Connect(url, nats.UserCredentials(CredsFile(dir, "orders")), nats.NoReconnect())
			if err == nil {
				nc.Close()
				t.Fatal("revoked user may connect again")
			}
			if !errors.Is(err, nats.ErrAuthorization) && !errors.Is(err, nats.ErrAuthRevoked) {
				t.Fatalf("reconnecting revoked user: %v, want an authorization error", err)
			}
			// Others are unaffected.
			if _, err := web.Request(call("catalog", "", "web", wire.ProtoHTTP, "GET"), nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
				t.Fatalf("web after revoking orders: %v, want no responders", err)
			}

			// Generating again gives orders a new key (JWTs issued after
			// a revocation would be valid again for the old one), which
			// the server accepts once the account JWT is pushed.
			if err := Generate(testSpec(), dir, WithOperator()); err != nil {
				t.Fatal(err)
			}
			if err := Push(ctx, dir, url); err != nil {
				t.Fatal(err)
			}
			again := connectCreds(t, url, dir, "orders")
			again.noViolations(t)
		})
	}
}

func TestExpiredUserRefused(t *testing.T) {
	t.Run("expired", func(t *testing.T) {
		dir := generated(t, testSpec(), WithOperator(), WithUserExpiry(-time.Minute))
		url := runStock(t, ConfigFile(dir))
		nc, err := nats.Connect(url, nats.UserCredentials(CredsFile(dir, "orders")), nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Fatal("expired user JWT accepted")
		}
		t.Logf("expired: %v", err)
	})
	t.Run("expires while connected", func(t *testing.T) {
		dir := generated(t, testSpec(), WithOperator(), WithUserExpiry(2*time.Second))
		url := runStock(t, ConfigFile(dir))
		closed := make(chan struct{})
		c := connectCreds(t, url, dir, "orders", nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("still connected after the JWT expired")
		}
		// The server sends "-ERR 'User Authentication Expired'" and closes;
		// which of the two the client reads last is a race.
		t.Logf("expired connection's last error: %v", c.LastError())
		// JWT expiry has one second resolution: within the second of
		// expiry, the server's timer has fired but a new connection still
		// validates. One second later it must not.
		checkFor(t, 3*time.Second, 100*time.Millisecond, func() error {
			nc, err := nats.Connect(url, nats.UserCredentials(CredsFile(dir, "orders")), nats.NoReconnect())
			if err == nil {
				nc.Close()
				return errors.New("expired user JWT accepted")
			}
			return nil
		})
	})
}

// TestRevokedKeyReplacedInAnyAccount: a user key revoked in one account is
// replaced even when its user now belongs to another, as the admin moved
// from mesh to STORE: a JWT issued now would make the leaked key valid
// again.
func TestRevokedKeyReplacedInAnyAccount(t *testing.T) {
	dir := generated(t, testSpec(), WithOperator())
	before := seedPublicKey(t, SeedFile(dir, DefaultAdmin))
	// A directory of before STORE: the admin's key revoked in mesh.
	accKP, _, err := keyFile(accountSeedFile(dir, DefaultAccount), nkeys.PrefixByteAccount, false)
	if err != nil {
		t.Fatal(err)
	}
	opKP, _, err := keyFile(operatorSeedFile(dir), nkeys.PrefixByteOperator, false)
	if err != nil {
		t.Fatal(err)
	}
	accPub, _ := accKP.PublicKey()
	ac, err := readAccountClaims(dir, accPub)
	if err != nil {
		t.Fatal(err)
	}
	ac.RevokeAt(before, time.Now())
	if err := writeAccountJWT(dir, DefaultAccount, ac, opKP); err != nil {
		t.Fatal(err)
	}
	if err := Generate(testSpec(), dir, WithOperator()); err != nil {
		t.Fatal(err)
	}
	if after := seedPublicKey(t, SeedFile(dir, DefaultAdmin)); after == before {
		t.Fatal("the admin kept a key revoked in another account")
	}
}
