package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/admission"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/natsconn"
	"github.com/natsmesh/natsmesh/wire"
)

// answer subscribes subject on nc and answers each message with its own
// reply subject in the Reply-To header, after sending it to seen.
func answer(t *testing.T, nc *nats.Conn, subject string, seen chan<- string) {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if seen != nil {
			seen <- m.Reply
		}
		if err := m.RespondMsg(&nats.Msg{Header: nats.Header{"Reply-To": {m.Reply}}}); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestOutboundReplySubjects: a call's reply subject is in the pair inbox
// of its caller and the service called, or of its caller and
// wire.PeerNATS for a plain NATS subject; the receiving side's check
// accepts the first.
func TestOutboundReplySubjects(t *testing.T) {
	b := meshtest.BareBroker(t)
	srv := meshtest.ServiceConn(t, b, "orders")
	answer(t, srv, "mesh.orders.>", nil)
	answer(t, srv, "native.svc", nil)
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))

	c := httpCall(t, "orders", "GET")
	reply, err := o.Send(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	to := reply.Header.Get("Reply-To")
	if want := wire.PairInbox("web", "orders") + "."; !strings.HasPrefix(to, want) {
		t.Errorf("a call to orders had reply subject %q, want under %q", to, want)
	}
	if !admission.ReplyAllowed(c.MeshSubject(), to) {
		t.Errorf("ReplyAllowed refuses the outbound pipeline's own reply subject %q", to)
	}

	reply, err = o.Send(context.Background(), &Call{Subject: "native.svc", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if to, want := reply.Header.Get("Reply-To"), wire.PairInbox("web", wire.PeerNATS)+"."; !strings.HasPrefix(to, want) {
		t.Errorf("a call to a NATS subject had reply subject %q, want under %q", to, want)
	}

	// A plain NATS call names its caller too: it owns the reply inbox.
	_, err = o.Send(context.Background(), &Call{Subject: "native.svc", Proto: wire.ProtoHTTP, Op: "GET"})
	if !errors.Is(err, wire.ErrNoRoute) {
		t.Errorf("a NATS call without a caller: %v, want no-route", err)
	}
}

// TestOutboundNoResponders: the mux's no-responders is the pipeline's,
// naming the destination.
func TestOutboundNoResponders(t *testing.T) {
	b := meshtest.BareBroker(t)
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	_, err := o.Send(context.Background(), httpCall(t, "orders", "GET"))
	var me *wire.Error
	if !errors.As(err, &me) || me.Kind != wire.KindNoResponders || me.Message != "no instance of orders is serving" {
		t.Fatalf("got %v, want no-responders naming orders", err)
	}
}

// TestOutboundClose: Close fails the calls waiting for a reply
// (connection-lost: they were sent) and refuses the later ones
// (broker-unavailable: nothing is sent).
func TestOutboundClose(t *testing.T) {
	b := meshtest.BareBroker(t)
	srv := meshtest.ServiceConn(t, b, "orders")
	got := make(chan *nats.Msg, 1)
	sub, err := srv.Subscribe("mesh.orders.>", func(m *nats.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	o, err := NewOutbound(meshtest.ServiceConn(t, b, "web"), OutboundConfig{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := o.Send(context.Background(), httpCall(t, "orders", "GET"))
		errc <- err
	}()
	<-got
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, wire.ErrConnectionLost) {
		t.Errorf("call in flight at Close: %v, want connection-lost", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := o.Send(ctx, httpCall(t, "orders", "GET")); !errors.Is(err, wire.ErrBrokerUnavailable) {
		t.Errorf("call after Close: %v, want broker-unavailable", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestOutboundReplySubscriptionRefused: a caller whose NATS user may not
// subscribe its inbox gets forbidden at once, saying what to do, instead
// of waiting its whole deadline: at its first call, before anything is
// sent (the broker's refusal comes before the PONG of the mux's flush),
// and for a minute after without asking the broker again; and for a call
// in flight when the refusal comes later (the mux subscribed again after a
// reconnect, to a broker whose configuration lacks the inbox).
func TestOutboundReplySubscriptionRefused(t *testing.T) {
	const (
		withInbox    = `publish: ["mesh.>"], subscribe: ["mesh.>", "_INBOX_mesh.web.>"]`
		withoutInbox = `publish: ["mesh.>"], subscribe: ["mesh.>"]`
	)
	for _, tc := range []struct {
		name    string
		perms   string // web's, at first
		restart bool   // the broker comes back with withoutInbox, a call in flight
		want    string // in the error's message
	}{
		{"at the first call", withoutInbox, false, "nothing was sent"},
		{"after a reconnect", withInbox, true, "the call was sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := meshtest.UserConfig(t, false, map[string]string{"web": tc.perms, "orders": ""})
			b := sec.Broker(t, func(c *broker.Config) { c.LameDuckDuration = -1 })
			got := make(chan *nats.Msg, 10)
			orders := sec.Conn(t, b, "orders", nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			if _, err := orders.Subscribe("mesh.orders.>", func(m *nats.Msg) { got <- m }); err != nil {
				t.Fatal(err)
			}
			if err := orders.Flush(); err != nil {
				t.Fatal(err)
			}
			var refusals atomic.Int64
			web := sec.Conn(t, b, "web", nats.CustomInboxPrefix(wire.InboxPrefix("web")), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					if v, ok := natsconn.ParseViolation(err); ok && v.Subscribe {
						refusals.Add(1)
					}
				}))
			o := outbound(t, web)
			send := func() (error, time.Duration) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				start := time.Now()
				_, err := o.Send(ctx, httpCall(t, "orders", "GET"))
				return err, time.Since(start)
			}

			var err error
			var took time.Duration
			if tc.restart {
				errc := make(chan error, 1)
				go func() { err, _ := send(); errc <- err }()
				<-got // in flight, unanswered
				conf := filepath.Join(t.TempDir(), "nats.conf")
				src, rerr := os.ReadFile(sec.Conf)
				if rerr != nil {
					t.Fatal(rerr)
				}
				if err := os.WriteFile(conf, []byte(strings.Replace(string(src), withInbox, withoutInbox, 1)), 0o600); err != nil {
					t.Fatal(err)
				}
				addr := strings.TrimPrefix(b.ClientURL(), "nats://")
				if err := b.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				meshtest.Broker(t, func(c *broker.Config) {
					c.ConfigFile, c.Listen, c.NoJetStream, c.LameDuckDuration = conf, addr, true, -1
				})
				err, took = <-errc, time.Since(start)
			} else {
				err, took = send()
				if len(got) != 0 {
					t.Errorf("orders saw %d calls, though the caller could get no reply", len(got))
				}
			}
			if !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "may not subscribe _INBOX_mesh.web.>") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want forbidden saying %q", err, tc.want)
			}
			if took > 5*time.Second {
				t.Errorf("the call failed after %v, not at once", took)
			}

			// The next calls: at once, unsent, the broker not asked again.
			meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if n := refusals.Load(); n != 1 {
					return fmt.Errorf("%d refusals reported", n)
				}
				return nil
			})
			before := len(got)
			for range 3 {
				err, took := send()
				if !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "nothing was sent") || took > time.Second {
					t.Errorf("a later call: %v after %v, want forbidden at once, nothing sent", err, took)
				}
			}
			if err := web.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			if n := refusals.Load(); n != 1 {
				t.Errorf("the broker was asked again: %d refusals", n)
			}
			if len(got) != before {
				t.Errorf("later calls were sent")
			}
		})
	}
}
