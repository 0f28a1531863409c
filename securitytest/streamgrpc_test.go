package securitytest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// grpcStream opens c's gRPC streaming call of method on service with the
// stream protocol's headers (h adds to them) and waits for its accept.
func grpcStream(t testing.TB, c *client, service, method string, h nats.Header) *rawStream {
	t.Helper()
	reply := wire.PairInbox(c.user, service) + "." + token() + ".1-" + token()
	s := &rawStream{t: t, c: c, in: make(chan *nats.Msg, 1024)}
	sub, err := c.ChanSubscribe(reply, s.in)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	hdr := nats.Header{
		"Mesh-Grpc-Stream":    {"1"},
		wire.HeaderStream:     {"1048576"},
		wire.HeaderStreamBody: {"more"},
	}
	for k, v := range h {
		hdr[k] = v
	}
	subject := wire.Subject{Service: service, Caller: c.user, Proto: wire.ProtoGRPC, Op: method}.String()
	if err := c.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: hdr}); err != nil {
		t.Fatal(err)
	}
	if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
		t.Fatalf("%s answered %v, want an accept", service, a.Header)
	}
	return s
}

// startGRPCUpstream serves grpc.health.v1 over h2c and returns its
// address as an agent's Upstream.
func startGRPCUpstream(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return "h2c://" + l.Addr().String()
}

// TestGRPCStreamDeclaredLength: Was a defect at cc44fa4, fixed since. A gRPC
// message of a streamed body is reassembled by grpcwire.MessageReader,
// which allocates the whole message (up to 4 MiB, gRPC's default bound)
// as soon as its 5-byte prefix has come, before any of it. So a caller
// (web, with its key alone) that opens a gRPC stream to a service's
// agent (orders, over h2c) and sends only a prefix declaring 4 MiB makes
// the agent hold 4 MiB for as long as the stream lives: 5 bytes in, 4 MiB
// held, per stream. With the agent's default of 1024 calls in flight
// (MaxConcurrent), 1024 such streams hold 4 GiB, for ~6 KB sent; with
// TestStreamSilentSlots, for 10 minutes each without another frame.
// The same reader takes a streamed gRPC answer in the caller's agent, so
// a callee's key does the same to its callers' agents (and the gateway).
// The reader should grow its buffer as bytes arrive (append, bounded by
// Max), so what it holds is what was sent, within the credit.
func TestGRPCStreamDeclaredLength(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: startGRPCUpstream(t), Policies: live.Static(f)})
		web := m.connect(t, "web")
		before := heap()
		const streams = 8
		var ss []*rawStream
		for range streams {
			s := grpcStream(t, web, "orders", "/grpc.health.v1.Health/Watch", nil)
			s.send(wire.FrameData, nil, []byte{0, 0, 0x40, 0, 0}) // a message of 4 MiB, declared
			ss = append(ss, s)
		}
		if err := web.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		held := int64(heap()) - int64(before)
		t.Logf("orders' agent holds %+d MiB for %d streams of 5 bytes each", held>>20, streams)
		for _, s := range ss {
			s.send(wire.FrameCancel, nil, nil)
		}
		web.Flush()
		if held > 4<<20 {
			t.Errorf("orders' agent holds %d MiB for %d bytes of gRPC body sent (%d streams): a declared length is allocated before it comes",
				held>>20, 5*streams, streams)
		}
	})
}
