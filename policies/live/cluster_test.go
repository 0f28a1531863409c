package live_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
)

// cluster starts n brokers with JetStream in one cluster, named s1..sn,
// each with routes to all (a JetStream cluster needs configured routes
// on every server, so the route ports are picked first).
func cluster(t *testing.T, n int) []*broker.Broker {
	t.Helper()
	var addrs, routes []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	var brokers []*broker.Broker
	for i := range n {
		brokers = append(brokers, meshtest.Broker(t, func(c *broker.Config) {
			c.ServerName = fmt.Sprintf("s%d", i+1)
			c.Cluster = broker.Cluster{Name: "mesh", Listen: addrs[i], Routes: routes}
			c.LameDuckDuration = -1
		}))
	}
	return brokers
}

// openClustered opens the store over nc, waiting for JetStream's cluster
// to elect its leader.
func openClustered(t *testing.T, nc *nats.Conn) (jetstream.JetStream, *live.Store) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var s *live.Store
	meshtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err = live.OpenStore(ctx, js)
		return err
	})
	return js, s
}

// answersDirectGet reports whether b's replica of the bucket's stream
// answers direct gets (the stream's own subscription, not JetStream's API).
func answersDirectGet(b *broker.Broker) bool {
	sz, err := b.Server().Subsz(&server.SubszOptions{Account: "$G", Test: live.DirectGetSubject, Subscriptions: true})
	if err != nil {
		return false
	}
	for _, sd := range sz.Subs {
		if sd.Subject == "$JS.API.DIRECT.GET.KV_"+live.Bucket+".>" {
			return true
		}
	}
	return false
}

// TestStoreCluster: on three clustered servers the bucket has three
// replicas, and with the server holding its stream's leader gone, Get
// and a new watch's start still answer with the applied file. On two
// servers it has one replica, and the store says why.
func TestStoreCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JetStream cluster")
	}
	t.Run("three servers", func(t *testing.T) {
		brokers := cluster(t, 3)
		nc := meshtest.Conn(t, brokers[0], nats.MaxReconnects(-1))
		js, store := openClustered(t, nc)
		if store.Replicas() != live.Replicas || !store.Created() || store.ReplicasNote() != "" {
			t.Fatalf("bucket: %d replicas (created %v, note %q), want %d", store.Replicas(), store.Created(), store.ReplicasNote(), live.Replicas)
		}
		ctx := t.Context()
		rev, err := store.Apply(ctx, meshWithTimeout(t, "7s"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, "KV_"+live.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream cluster info: %+v", info.Cluster)
		}
		// Every replica has the write before the leader goes.
		meshtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Lag > 0 {
					return fmt.Errorf("replica %s: current %v, lag %d", r.Name, r.Current, r.Lag)
				}
			}
			return nil
		})
		// Followers join the direct get's queue group once they are
		// current (nats-server checks every 2 s): wait for every server.
		meshtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			for _, b := range brokers {
				if !answersDirectGet(b) {
					return fmt.Errorf("%s does not answer direct gets yet", b.Server().Name())
				}
			}
			return nil
		})
		leader := info.Cluster.Leader
		var survivor *broker.Broker
		for _, b := range brokers {
			if b.Server().Name() != leader {
				survivor = b
				break
			}
		}
		// A store opened on a server that stays (as an admin's `policy
		// get` or an agent opens it), before the leader goes.
		snc := meshtest.Conn(t, survivor)
		_, pre := openClustered(t, snc)
		for _, b := range brokers {
			if b.Server().Name() == leader {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := b.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
			}
		}
		t.Logf("stopped %s, the stream's leader", leader)
		// At once, while the remaining replicas elect a leader: Store.Get,
		// live.Get and a new watch's start read from a replica.
		start := time.Now()
		var logs logBuffer
		src, err := live.WatchKV(ctx, snc, live.SourceConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if f, got := src.Current(); got != rev || ordersTimeout(f) != "7s" {
			t.Fatalf("a new watch without the leader: revision %d (%s), want %d\n%s", got, ordersTimeout(f), rev, logs.String())
		}
		t.Logf("a new watch started %v after the leader stopped", time.Since(start))
		// A request may be lost to the route of the server that just
		// went (nats-server drops its interest a moment later): ask
		// again, as the watch does.
		get := func(name string, get func(context.Context) (*policies.File, uint64, error)) {
			t.Helper()
			meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				gctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				f, got, err := get(gctx)
				if err != nil || got != rev || ordersTimeout(f) != "7s" {
					return fmt.Errorf("%s without the leader: revision %d (%s), %v; want %d", name, got, ordersTimeout(f), err, rev)
				}
				return nil
			})
		}
		get("Store.Get", pre.Get)
		get("live.Get", func(ctx context.Context) (*policies.File, uint64, error) { return live.Get(ctx, snc) })
		t.Logf("Store.Get and live.Get answered %v after the leader stopped", time.Since(start))

		// And once a new leader is elected, applies go on.
		meshtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := pre.Apply(ctx, meshWithTimeout(t, "8s"))
			return err
		})
		holds(t, src, "8s", time.Second)
	})

	t.Run("two servers", func(t *testing.T) {
		brokers := cluster(t, 2)
		_, store := openClustered(t, meshtest.Conn(t, brokers[0]))
		if store.Replicas() != 1 || store.ReplicasNote() == "" {
			t.Fatalf("bucket on two servers: %d replicas, note %q; want 1 with a note", store.Replicas(), store.ReplicasNote())
		}
		t.Logf("one replica: %s", store.ReplicasNote())
		// Opened again, the bucket is not created.
		_, again := openClustered(t, meshtest.Conn(t, brokers[1]))
		if again.Created() || again.Replicas() != 1 {
			t.Errorf("opened again: created %v, %d replicas", again.Created(), again.Replicas())
		}
	})
}
