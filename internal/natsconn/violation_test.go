package natsconn

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestParseViolation reads nats-server's permissions violations as nats.go
// reports them, from a broker that refuses them over TCP, and refuses
// anything else.
func TestParseViolation(t *testing.T) {
	sec := meshtest.SecureConfig(t, false, "admin", "web")
	b := sec.Broker(t)
	o, err := nats.NkeyOptionFromSeed(sec.Seed("web"))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	nc := meshtest.Conn(t, b, o, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	next := func(what string) error {
		t.Helper()
		select {
		case err := <-errs:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no error reported", what)
			return nil
		}
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want Violation
	}{
		{"publish", func() error { return nc.Publish("not.allowed", nil) }, Violation{Subject: "not.allowed"}},
		{"subscription", func() error { _, err := nc.Subscribe("not.allowed.>", func(*nats.Msg) {}); return err },
			Violation{Subscribe: true, Subject: "not.allowed.>"}},
		{"queue subscription", func() error {
			_, err := nc.QueueSubscribe("_INBOX_mesh.other.>", "q.v2", func(*nats.Msg) {})
			return err
		},
			Violation{Subscribe: true, Subject: "_INBOX_mesh.other.>", Queue: "q.v2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			err := next(tc.name)
			got, ok := ParseViolation(err)
			if !ok || got != tc.want {
				t.Errorf("ParseViolation(%v) = %+v %v, want %+v", err, got, ok, tc.want)
			}
		})
	}
	for _, err := range []error{
		nil,
		errors.New(`Permissions Violation for Publish to "x"`), // not nats.go's
		fmt.Errorf("%w: Permissions Violation for Publish with Reply of %q", nats.ErrPermissionViolation, "_R_.x"),
		nats.ErrSlowConsumer,
	} {
		if v, ok := ParseViolation(err); ok {
			t.Errorf("ParseViolation(%v) = %+v, want none", err, v)
		}
	}
	// A reload that withdraws an accepted subscription names its sid.
	reload := fmt.Errorf("%w: Permissions Violation for Subscription to %q using queue %q (sid %q)", nats.ErrPermissionViolation, "mesh.web._.>", "web", "4")
	if v, ok := ParseViolation(reload); !ok || v != (Violation{Subscribe: true, Subject: "mesh.web._.>", Queue: "web"}) {
		t.Errorf("ParseViolation(%v) = %+v %v", reload, v, ok)
	}
}
