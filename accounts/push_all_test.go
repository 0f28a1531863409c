package accounts

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestPushEveryAccount: Push without names sends every account's JWT, so
// a key rotated by generating again is revoked on the running server
// (the old key's connection is closed) without a restart.
func TestPushEveryAccount(t *testing.T) {
	dir := generated(t, testSpec(), WithOperator())
	url := runStock(t, ConfigFile(dir))
	closed := make(chan struct{})
	connectCreds(t, url, dir, "web", nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err := Generate(testSpec(), dir, WithOperator(), WithRotate("web")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Push(ctx, dir, url); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the rotated key's connection still open after pushing every account")
	}
	connectCreds(t, url, dir, "web").noViolations(t)
}
