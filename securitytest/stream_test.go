package securitytest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// streamMesh: web calls orders (same account) and pay (another account,
// which exports it to web's); inventory is a bystander with a key of its
// own in web's account.
const streamMesh = `version: 1
accounts:
  billing:
    exports:
      - service: pay
        to: [mesh]
services:
  web: {}
  inventory: {}
  orders:
    allow:
      - caller: web
  pay:
    account: billing
    allow:
      - caller: web
`

// echoStream answers with the request's own streamed body, as it reads it
// (full duplex).
var echoStream = pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	if !c.Body.Streamed() {
		return nil, errors.New("the body came whole")
	}
	return pipeline.NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, c.Body.Stream), nil
})

type chunks struct {
	left, size int
}

func (c *chunks) Next(ctx context.Context) ([]byte, error) {
	if c.left == 0 {
		return nil, io.EOF
	}
	n := min(c.left, c.size)
	c.left -= n
	return bytes.Repeat([]byte{'s'}, n), nil
}
func (c *chunks) Trailer() nats.Header { return nil }
func (c *chunks) Close() error         { return nil }

// TestStreamsUnderTheReplyModel: a stream's frames both ways are
// authorized by the generated configuration, over TCP, in both account
// modes, within an account and across accounts (stream exports both
// ways); and a holder of another service's key (inventory) can neither
// publish into a callee's stream inbox nor subscribe to one.
func TestStreamsUnderTheReplyModel(t *testing.T) {
	f := parseFile(t, streamMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		for _, svc := range []string{"orders", "pay"} {
			nc := m.connect(t, svc)
			in, err := pipeline.NewInbound(nc.Conn, pipeline.InboundConfig{Service: svc, Handler: echoStream})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { in.Close(context.Background()) })
			subjects, queues := wire.ServiceSubjects(svc, "")
			for i := range subjects {
				if _, err := nc.QueueSubscribe(subjects[i], queues[i], in.ServeMsg); err != nil {
					t.Fatal(err)
				}
			}
			nc.Flush()
		}
		web := m.connect(t, "web")
		o, err := pipeline.NewOutbound(web.Conn, pipeline.OutboundConfig{StreamIdle: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		for _, svc := range []string{"orders", "pay"} {
			r, _ := http.NewRequest(http.MethodPost, "http://"+svc+"/", nil)
			msg, err := httpwire.EncodeRequest(r, wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			const size = 3 << 20
			c := &pipeline.Call{Service: svc, Caller: "web", Proto: wire.ProtoHTTP, Op: "POST", Path: "/",
				Header: msg.Header, Body: pipeline.Body{Stream: &chunks{left: size, size: 64 << 10}}}
			reply, err := o.Send(context.Background(), c)
			if err != nil {
				t.Fatalf("%s: %v", svc, err)
			}
			whole, err := reply.ReadWhole(context.Background(), 1<<30)
			if err != nil {
				t.Fatalf("%s: %v", svc, err)
			}
			if len(whole.Data) != size {
				t.Errorf("%s echoed %d bytes of %d", svc, len(whole.Data), size)
			}
		}
		web.noViolations(t)

		// inventory's key: no publish into orders' stream inboxes from web,
		// no subscription to them.
		attacker := m.connect(t, "inventory")
		target := wire.PairInbox("orders", "web") + ".x.1-y"
		attacker.Publish(target, []byte("forged"))
		attacker.waitViolation(t, target)
		if _, err := attacker.SubscribeSync(wire.InboxPrefix("orders") + ".>"); err == nil {
			attacker.Flush()
			attacker.waitViolation(t, wire.InboxPrefix("orders")+".>")
		}
		if !strings.HasPrefix(target, "_INBOX_mesh.orders.web.") {
			t.Fatal(target)
		}
	})
}
