package replymux

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// The Mux against nats.go's own request, side by side: one connection
// calls a responder on another, through the same broker, with the same
// message (a header, as every mesh call has, and a small body). The
// allocations counted are the whole process's: the broker's and the
// responder's too, the same in both.

func benchConns(b *testing.B) (*nats.Conn, *nats.Msg) {
	br := meshtest.BareBroker(b)
	nc := meshtest.Conn(b, br)
	srv := meshtest.Conn(b, br)
	respond(b, srv, "bench.echo", func(m *nats.Msg) []*nats.Msg {
		return []*nats.Msg{{Subject: m.Reply, Data: m.Data}}
	})
	return nc, &nats.Msg{Subject: "bench.echo", Header: nats.Header{"Mesh-Timeout": {"30000m"}}, Data: []byte("hello")}
}

func BenchmarkMux(b *testing.B) {
	nc, m := benchConns(b)
	x := newMux(b, nc, "web")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.Request(ctx, m, "orders"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNatsRequest(b *testing.B) {
	nc, m := benchConns(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.RequestMsgWithContext(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMuxParallel(b *testing.B) {
	nc, m := benchConns(b)
	x := newMux(b, nc, "web")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := x.Request(ctx, m, "orders"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkNatsRequestParallel(b *testing.B) {
	nc, m := benchConns(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := nc.RequestMsgWithContext(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
