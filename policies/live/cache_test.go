package live_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
)

// keepIn has a watch over nc with cache apply the store's file whose orders
// timeout is want, and so keep it in cache.
func keepIn(t *testing.T, nc *nats.Conn, cache, want string) {
	t.Helper()
	w, err := live.WatchKV(t.Context(), nc, live.SourceConfig{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	holds(t, w, want, time.Second)
	meshtest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
		data, err := os.ReadFile(cache)
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), w.Digest()) {
			return fmt.Errorf("the cache does not hold the version applied yet")
		}
		return nil
	})
}

// startWith starts a watch over nc with cache and returns it and its log.
func startWith(t *testing.T, nc *nats.Conn, cache string) (*live.Source, *logBuffer) {
	t.Helper()
	var logs logBuffer
	src, err := live.WatchKV(t.Context(), nc, live.SourceConfig{Cache: cache, FetchTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, &logs
}

// refusesCache checks that src holds no file, having refused the kept
// one for why.
func refusesCache(t *testing.T, src *live.Source, logs *logBuffer, why string) {
	t.Helper()
	if f, rev := src.Current(); f != nil {
		t.Errorf("the watch applies the kept file (revision %d, orders timeout %s)\n%s", rev, ordersTimeout(f), logs.String())
	}
	checkLog(t, logs, "level=WARN", "refused the last good mesh file kept on disk: "+why)
}

// TestWatchCacheOfAnotherMesh: the kept file names the mesh it came from,
// and a watch of another mesh does not use it. The default path is
// $XDG_STATE_HOME/natsmesh/<name>/mesh.json, one per service name and
// user, so an agent "orders" of mesh A (here: an open laptop broker with a
// permissive file) leaves a file that an agent "orders" of mesh B finds.
// B's store answers and holds no file yet (before its first policy apply):
// the store is the truth, and the kept file is only for a start without
// it. B has no store, and another address: without credentials, the
// servers name the mesh. The same address and another user: the
// credentials do. A store whose only version does not parse and is of
// another generation of the bucket: the generation does.
func TestWatchCacheOfAnotherMesh(t *testing.T) {
	ctx := t.Context()
	cache := filepath.Join(t.TempDir(), "state", "natsmesh", "orders", "mesh.json")

	// Mesh A: a file is applied, and kept with the mesh it came from.
	a := newEnv(t)
	if _, err := a.store.Apply(ctx, meshWithTimeout(t, "9s")); err != nil {
		t.Fatal(err)
	}
	keepIn(t, a.nc, cache, "9s")
	var kept struct {
		Mesh struct {
			User    string
			Servers []string
		}
		Generation string
	}
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &kept); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(a.b.ClientURL())
	if kept.Mesh.User != "" || len(kept.Mesh.Servers) != 1 || kept.Mesh.Servers[0] != u.Host || kept.Generation != a.store.Generation() {
		t.Errorf("kept with mesh %+v, generation %q; want no user, servers [%s], generation %q", kept.Mesh, kept.Generation, u.Host, a.store.Generation())
	}

	t.Run("store empty", func(t *testing.T) {
		b := newEnv(t) // its bucket made, but empty
		src, logs := startWith(t, b.nc, cache)
		refusesCache(t, src, logs, "the store answers and holds no mesh file")
	})

	t.Run("no store, other servers", func(t *testing.T) {
		b := meshtest.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
		src, logs := startWith(t, meshtest.Conn(t, b), cache)
		refusesCache(t, src, logs, "it was kept from the servers "+u.Host+" without credentials")
	})

	t.Run("other credentials", func(t *testing.T) {
		e, connect := newAuthEnv(t)
		if _, err := e.store.Apply(ctx, meshWithTimeout(t, "8s")); err != nil {
			t.Fatal(err)
		}
		cache := filepath.Join(t.TempDir(), "mesh.json")
		keepIn(t, e.nc, cache, "8s")
		e.restart(t, authConf, func(c *broker.Config) { c.NoJetStream = true })
		src, logs := startWith(t, connect("deaf"), cache)
		refusesCache(t, src, logs, "it was kept as user admin, and this watch connects as user deaf")
		// The same user on the same servers: the same mesh.
		src, _ = startWith(t, connect("admin"), cache)
		holds(t, src, "8s", time.Second)
	})

	t.Run("another generation", func(t *testing.T) {
		// A version that does not parse, as Store would write it to
		// another bucket.
		bad := func(gen string) {
			t.Helper()
			m := nats.NewMsg(live.WriteSubject)
			m.Header.Set(live.GenerationHeader, gen)
			m.Data = []byte("version: 2\n")
			if _, err := a.js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		bad("2001-02-03T04:05:06.000000007Z")
		src, logs := startWith(t, a.nc, cache)
		refusesCache(t, src, logs, "it is of the bucket generation "+a.store.Generation()+", and the store's is 2001-02-03T04:05:06.000000007Z")
		// Of the generation kept: the kept file is used.
		bad(a.store.Generation())
		src, _ = startWith(t, a.nc, cache)
		holds(t, src, "9s", time.Second)
	})
}

// TestWatchCacheFileChecks: a kept file that its group or others may
// write, that another user owns, or that names no mesh (kept before files
// did) is not used.
func TestWatchCacheFileChecks(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cache := filepath.Join(t.TempDir(), "orders", "mesh.json")
	if _, err := e.store.Apply(ctx, meshWithTimeout(t, "5s")); err != nil {
		t.Fatal(err)
	}
	keepIn(t, e.nc, cache, "5s")
	// The store holds only a file that does not parse: the kept one is
	// wanted.
	if _, err := e.store.KV().Put(ctx, live.Key, []byte("version: 2\n")); err != nil {
		t.Fatal(err)
	}
	cannotUse := func(t *testing.T, why string) {
		t.Helper()
		src, logs := startWith(t, e.nc, cache)
		if f, rev := src.Current(); f != nil {
			t.Errorf("the watch applies the kept file (revision %d)", rev)
		}
		checkLog(t, logs, "level=WARN", "cannot use the last good mesh file kept on disk", why)
	}

	t.Run("mode", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
			if err := os.Chmod(cache, mode); err != nil {
				t.Fatal(err)
			}
			cannotUse(t, fmt.Sprintf("writable by its group or others (mode %04o", mode))
		}
		if err := os.Chmod(cache, 0o640); err != nil { // readable is fine
			t.Fatal(err)
		}
		src, _ := startWith(t, e.nc, cache)
		holds(t, src, "5s", time.Second)
		os.Chmod(cache, 0o600)
	})

	t.Run("owner", func(t *testing.T) {
		if err := os.Chown(cache, os.Geteuid()+4242, -1); err != nil {
			t.Skipf("cannot give the file to another user: %v", err)
		}
		defer os.Chown(cache, os.Geteuid(), -1)
		cannotUse(t, fmt.Sprintf("owned by uid %d, not by this user (uid %d)", os.Geteuid()+4242, os.Geteuid()))
	})

	t.Run("no mesh", func(t *testing.T) {
		data, err := os.ReadFile(cache)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]json.RawMessage
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		delete(c, "mesh")
		if data, err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cache, data, 0o600); err != nil {
			t.Fatal(err)
		}
		src, logs := startWith(t, e.nc, cache)
		refusesCache(t, src, logs, "it names no mesh (kept by an older natsmesh)")
	})
}
