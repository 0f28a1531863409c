package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestBrokerRestartThenApply: three sidecars watch the bucket; the broker
// restarts on the same store, and `policy apply` of a new file reaches
// every one within a second; it restarts again on an empty store (the
// bucket made anew, its revisions from 1), and the next apply reaches
// every one within a second too (it used to be ignored, as not newer than
// what they held).
func TestBrokerRestartThenApply(t *testing.T) {
	store := t.TempDir()
	b := meshtest.Broker(t, func(c *broker.Config) { c.StoreDir = store; c.LameDuckDuration = -1 })
	addr, _ := url.Parse(b.ClientURL())
	restart := func(dir string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		b = meshtest.Broker(t, func(c *broker.Config) { c.Listen = addr.Host; c.StoreDir = dir; c.LameDuckDuration = -1 })
	}
	// apply applies a file whose orders timeout is timeout, as `policy
	// apply` would, over a connection of its own, and returns the
	// revision and the digest agents report for it.
	apply := func(timeout string) (uint64, string) {
		t.Helper()
		nc := meshtest.Conn(t, b)
		defer nc.Close()
		js, _ := jetstream.New(nc)
		s, err := live.OpenStore(t.Context(), js)
		if err != nil {
			t.Fatal(err)
		}
		f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders:\n    policy: { timeout: "+timeout+" }\n"))
		if err != nil {
			t.Fatal(err)
		}
		rev, err := s.Apply(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := f.JSON()
		d := sha256.Sum256(data)
		return rev, hex.EncodeToString(d[:])
	}

	var sidecars []*Sidecar
	defer func() {
		// Before the last broker's cleanup: draining needs a connection.
		for _, s := range sidecars {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.Shutdown(ctx)
			cancel()
		}
	}()
	for i := range 3 {
		service := fmt.Sprintf("svc%d", i)
		nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix(service)),
			nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		s, err := NewSidecar(SidecarConfig{Agent: Config{Service: service, Logger: quiet}, Conn: nc, HTTP: "127.0.0.1:0", Admin: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		sidecars = append(sidecars, s)
	}
	// everyHolds waits up to within until every sidecar's GET /config
	// shows revision rev with digest d.
	everyHolds := func(rev uint64, d string, within time.Duration) {
		t.Helper()
		start := time.Now()
		meshtest.CheckFor(t, within, 5*time.Millisecond, func() error {
			for i, s := range sidecars {
				resp, err := http.Get("http://" + s.Addr("admin").String() + "/config")
				if err != nil {
					return err
				}
				var c live.ConfigResponse
				err = json.NewDecoder(resp.Body).Decode(&c)
				resp.Body.Close()
				if err != nil {
					return err
				}
				if c.Revision != rev || c.Digest != d {
					return fmt.Errorf("sidecar %d at revision %d (%.12s), want %d (%.12s)", i, c.Revision, c.Digest, rev, d)
				}
			}
			return nil
		})
		t.Logf("revision %d reached all %d sidecars in %v", rev, len(sidecars), time.Since(start))
	}
	connected := func() {
		t.Helper()
		meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			for i, s := range sidecars {
				if !s.Conn().IsConnected() {
					return fmt.Errorf("sidecar %d not reconnected", i)
				}
			}
			return nil
		})
	}

	rev, d := apply("1s")
	everyHolds(rev, d, time.Second)

	restart(store)
	connected()
	rev2, d2 := apply("2s")
	if rev2 <= rev {
		t.Fatalf("the bucket did not survive the restart: revision %d after %d", rev2, rev)
	}
	everyHolds(rev2, d2, time.Second)

	restart(t.TempDir()) // the store lost: the bucket is made anew
	connected()
	rev3, d3 := apply("3s")
	if rev3 != 1 {
		t.Fatalf("a new bucket's first revision is %d, want 1", rev3)
	}
	everyHolds(rev3, d3, time.Second)
}
