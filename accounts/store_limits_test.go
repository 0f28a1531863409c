package accounts

import (
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// TestStoreAccountJetStreamUnlimited: in operator mode the store account's
// JWT enables JetStream without limits (-1: memory, disk, streams,
// consumers), as the policies bucket and one watcher per agent need; the
// other accounts' JWTs enable none.
func TestStoreAccountJetStreamUnlimited(t *testing.T) {
	dir := generated(t, testSpec(), WithOperator())
	for _, acc := range []string{StoreAccount, DefaultAccount} {
		ac := accountClaims(t, dir, acc)
		want := jwt.JetStreamLimits{}
		if acc == StoreAccount {
			want = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		if got := ac.Limits.JetStreamLimits; got != want {
			t.Errorf("account %s: JetStream limits %+v, want %+v", acc, got, want)
		}
	}
}

// TestRotateRevokesTheOldKey: in operator mode a rotated user's old key is
// revoked in its account's JWT, and nothing is revoked without a rotation.
func TestRotateRevokesTheOldKey(t *testing.T) {
	dir := generated(t, testSpec(), WithOperator())
	userPub := func() string {
		kp, _, err := keyFile(SeedFile(dir, "orders"), nkeys.PrefixByteUser, false)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		return pub
	}
	account := func() *jwt.AccountClaims { return accountClaims(t, dir, DefaultAccount) }
	if r := account().Revocations; len(r) != 0 {
		t.Fatalf("revocations without a rotation: %v", r)
	}
	old := userPub()
	// A JWT of the old key issued before the rotation is revoked (asked
	// of a time after it, the check failed when the rotation ended in
	// the next second: revocations are in whole seconds).
	issued := time.Now()
	if err := Generate(testSpec(), dir, WithOperator(), WithRotate("orders")); err != nil {
		t.Fatal(err)
	}
	if r := account().Revocations; len(r) != 1 || !r.IsRevoked(old, issued) {
		t.Errorf("after rotating orders: revocations %v, want its old key %s", r, old)
	}
}

// accountClaims reads the JWT of account acc that dir holds.
func accountClaims(t *testing.T, dir, acc string) *jwt.AccountClaims {
	t.Helper()
	kp, _, err := keyFile(accountSeedFile(dir, acc), nkeys.PrefixByteAccount, false)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	ac, err := readAccountClaims(dir, pub)
	if err != nil {
		t.Fatal(err)
	}
	return ac
}
