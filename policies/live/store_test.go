package live_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
)

const wait = 10 * time.Second

// env is a broker with a store, and the connection it was opened on.
type env struct {
	b     *broker.Broker
	nc    *nats.Conn
	js    jetstream.JetStream
	store *live.Store
}

func openStore(t *testing.T) *live.Store { return newEnv(t).store }

func newEnv(t *testing.T, opts ...func(*broker.Config)) *env {
	t.Helper()
	b := meshtest.Broker(t, opts...)
	if !b.Server().JetStreamConfig().SyncAlways {
		t.Error("the broker does not fsync every JetStream write")
	}
	nc := meshtest.Conn(t, b)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := live.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_"+live.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	c := st.CachedInfo().Config
	if c.Storage != jetstream.FileStorage || !c.AllowDirect || c.MaxMsgsPerSubject != 16 {
		t.Errorf("bucket stream: storage %v, allow direct %v, history %d", c.Storage, c.AllowDirect, c.MaxMsgsPerSubject)
	}
	// One server: three replicas are refused, and the store says why.
	if c.Replicas != 1 || s.Replicas() != 1 || !s.Created() || s.ReplicasNote() == "" {
		t.Errorf("bucket on one server: %d replicas (store says %d, created %v, note %q)", c.Replicas, s.Replicas(), s.Created(), s.ReplicasNote())
	}
	return &env{b: b, nc: nc, js: js, store: s}
}

// meshWithTimeout returns a small valid file whose orders timeout tells
// versions apart.
func meshWithTimeout(t *testing.T, timeout string) *policies.File {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  orders:\n    policy: { timeout: "+timeout+" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ordersTimeout(f *policies.File) string {
	if f == nil {
		return "none"
	}
	return f.Policy("orders", "").Timeout.String()
}

func TestStore(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	if _, _, err := s.Get(ctx); !errors.Is(err, live.ErrNotFound) {
		t.Fatalf("Get on an empty bucket: %v, want ErrNotFound", err)
	}
	f := meshWithTimeout(t, "3s")
	rev, err := s.Apply(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	got, grev, err := s.Get(ctx)
	if err != nil || grev != rev {
		t.Fatalf("Get: revision %d, %v; want %d", grev, err, rev)
	}
	if d := policies.Diff(f, got); len(d) > 0 {
		t.Errorf("stored file differs: %v", d)
	}
	if _, err := s.ApplyIf(ctx, meshWithTimeout(t, "4s"), rev+7); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("ApplyIf over a stale revision: %v, want ErrKeyExists", err)
	}
	rev2, err := s.ApplyIf(ctx, meshWithTimeout(t, "4s"), rev)
	if err != nil || rev2 <= rev {
		t.Errorf("ApplyIf over the live revision: %d, %v", rev2, err)
	}
	if _, err := s.Apply(ctx, &policies.File{Version: 7}); !errors.Is(err, policies.ErrInvalid) {
		t.Errorf("Apply of an invalid file: %v, want ErrInvalid", err)
	}
}

// TestStoreGeneration: every version Store writes carries the bucket's
// generation, the time JetStream created its stream; a bucket made anew
// has another. ApplyIf over none replaces a deleted or purged key, as
// KeyValue.Create does.
func TestStoreGeneration(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	st, err := e.js.Stream(ctx, "KV_"+live.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	created := st.CachedInfo().Created
	if want := created.UTC().Format(time.RFC3339Nano); e.store.Generation() != want {
		t.Fatalf("generation %q, want the stream's creation time %q", e.store.Generation(), want)
	}
	check := func(rev uint64) {
		t.Helper()
		m, err := st.GetLastMsgForSubject(ctx, live.WriteSubject)
		if err != nil {
			t.Fatal(err)
		}
		if m.Sequence != rev || m.Header.Get(live.GenerationHeader) != e.store.Generation() {
			t.Errorf("revision %d with generation %q, want %d with %q", m.Sequence, m.Header.Get(live.GenerationHeader), rev, e.store.Generation())
		}
	}
	rev, err := e.store.ApplyIf(ctx, meshWithTimeout(t, "1s"), 0)
	if err != nil {
		t.Fatal(err)
	}
	check(rev)
	if _, err := e.store.ApplyIf(ctx, meshWithTimeout(t, "2s"), 0); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Errorf("ApplyIf over none while a file is live: %v, want ErrKeyExists", err)
	}
	for _, remove := range []func(context.Context, string, ...jetstream.KVDeleteOpt) error{e.store.KV().Delete, e.store.KV().Purge} {
		if err := remove(ctx, live.Key); err != nil {
			t.Fatal(err)
		}
		if rev, err = e.store.ApplyIf(ctx, meshWithTimeout(t, "3s"), 0); err != nil {
			t.Fatalf("ApplyIf over none after the key was removed: %v", err)
		}
		check(rev)
	}
	if rev, err = e.store.Apply(ctx, meshWithTimeout(t, "4s")); err != nil {
		t.Fatal(err)
	}
	check(rev)

	// A bucket made anew: another generation.
	if err := e.js.DeleteKeyValue(ctx, live.Bucket); err != nil {
		t.Fatal(err)
	}
	again, err := live.OpenStore(ctx, e.js)
	if err != nil {
		t.Fatal(err)
	}
	if again.Generation() == e.store.Generation() || again.Generation() == "" {
		t.Errorf("the bucket made anew has generation %q, the first had %q", again.Generation(), e.store.Generation())
	}
}

// logBuffer is a slog destination tests can read while a watcher writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestWatchKV: a watch applies the store's file at start and each new
// apply within a second, logs each (revision, digest), refuses and logs a
// version that does not parse (keeping the last good), and OnChange sees
// each applied version once, in order.
func TestWatchKV(t *testing.T) {
	e := newEnv(t)
	s := e.store
	ctx := t.Context()
	var logs logBuffer
	var mu sync.Mutex
	var seen []uint64
	src, err := live.WatchKV(ctx, e.nc, live.SourceConfig{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnChange: func(_ *policies.File, rev uint64) {
			mu.Lock()
			seen = append(seen, rev)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if f, rev := src.Current(); f != nil || rev != 0 || src.Digest() != "" {
		t.Fatalf("empty bucket: Current = %v, %d", f, rev)
	}
	if l := logs.String(); !strings.Contains(l, "the store holds no mesh file yet") {
		t.Errorf("no line about the empty store: %q", l)
	}
	waitFor := func(want string) uint64 {
		t.Helper()
		var rev uint64
		meshtest.CheckFor(t, time.Second, 2*time.Millisecond, func() error {
			var f *policies.File
			f, rev = src.Current()
			if got := ordersTimeout(f); got != want {
				return fmt.Errorf("orders timeout %s, want %s", got, want)
			}
			return nil
		})
		return rev
	}
	r1, _ := s.Apply(ctx, meshWithTimeout(t, "1s"))
	if got := waitFor("1s"); got != r1 {
		t.Errorf("revision %d, want %d", got, r1)
	}
	checkLog(t, &logs, "applied mesh file", fmt.Sprintf("revision=%d", r1), "digest="+src.Digest()[:12], "source=\"bucket natsmesh-policies\"")
	r2, _ := s.Apply(ctx, meshWithTimeout(t, "2s"))
	waitFor("2s")

	// A bad value put straight into the bucket is refused and logged
	// once, with its revision and digest, and the last good one kept.
	badData := []byte("version: 1\nservices: { Orders: {} }\n")
	bad, err := s.KV().Put(ctx, live.Key, badData)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(badData)
	checkLog(t, &logs, "refused a mesh file that does not parse", fmt.Sprintf("revision=%d", bad), "digest="+hex.EncodeToString(sum[:6]), "is not a valid name")
	if f, rev := src.Current(); rev != r2 || ordersTimeout(f) != "2s" {
		t.Errorf("after a bad version: revision %d (%s), want the last good %d", rev, ordersTimeout(f), r2)
	}

	// A watcher that starts while the latest version is bad holds none:
	// without the store's history (watchers read only the current
	// version), the last good is what a cache file keeps (TestWatchCache).
	late, err := live.WatchKV(ctx, e.nc, live.SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if f, rev := late.Current(); f != nil {
		t.Errorf("late watcher starts at revision %d, want none", rev)
	}

	r4, _ := s.Apply(ctx, meshWithTimeout(t, "4s"))
	waitFor("4s")
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	src.Close() // twice is fine
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{r1, r2, r4}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("OnChange saw revisions %v, want %v", seen, want)
	}
	if n := strings.Count(logs.String(), "refused a mesh file"); n != 1 {
		t.Errorf("the bad version was logged %d times, want once:\n%s", n, logs.String())
	}
}

// checkLog waits until logs has a line with every one of want.
func checkLog(t *testing.T, logs *logBuffer, want ...string) {
	t.Helper()
	meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("no log line with %q in:\n%s", want, logs.String())
	})
}

func TestWatchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mesh := func(timeout string) string {
		return "version: 1\nservices:\n  orders:\n    policy: { timeout: " + timeout + " }\n"
	}
	ctx := t.Context()
	write("version: 1\nservices: { orders: { polcy: {} } }\n")
	if _, err := live.WatchFile(ctx, path, live.SourceConfig{}); !errors.Is(err, policies.ErrInvalid) {
		t.Fatalf("a bad first version: %v, want ErrInvalid", err)
	}
	write(mesh("1s"))
	var logs logBuffer
	src, err := live.WatchFile(ctx, path, live.SourceConfig{
		Interval: 5 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if f, rev := src.Current(); rev != 1 || ordersTimeout(f) != "1s" {
		t.Fatalf("first load: revision %d, %s", rev, ordersTimeout(f))
	}
	waitFor := func(want string, wantRev uint64) {
		t.Helper()
		meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
			f, rev := src.Current()
			if got := ordersTimeout(f); got != want || rev != wantRev {
				return fmt.Errorf("orders timeout %s at revision %d, want %s at %d", got, rev, want, wantRev)
			}
			return nil
		})
	}
	write(mesh("22s")) // a different size, so mtime granularity does not matter
	waitFor("22s", 2)

	write("version: 1\nservices: { orders: { policy: { timeout: soon } } }\n")
	meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), `\"soon\" is not a duration`) {
			return fmt.Errorf("no warning yet: %q", logs.String())
		}
		return nil
	})
	waitFor("22s", 2)

	os.Remove(path)
	meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "no such file") {
			return fmt.Errorf("no warning about the missing file yet: %q", logs.String())
		}
		return nil
	})
	write(mesh("333s"))
	waitFor("5m33s", 3)
}

func TestFollow(t *testing.T) {
	e := newEnv(t)
	s := e.store
	ctx := t.Context()
	r1, _ := s.Apply(ctx, meshWithTimeout(t, "1s"))
	src, err := live.WatchKV(ctx, e.nc, live.SourceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	type follower struct {
		src  *live.Source
		mu   sync.Mutex
		seen []uint64
	}
	fls := make([]*follower, 3)
	for i := range fls {
		fl := &follower{}
		fl.src = src.Follow(live.SourceConfig{OnChange: func(_ *policies.File, rev uint64) {
			fl.mu.Lock()
			fl.seen = append(fl.seen, rev)
			fl.mu.Unlock()
		}})
		fls[i] = fl
		if _, rev := fl.src.Current(); rev != r1 {
			t.Fatalf("follower starts at revision %d, want %d", rev, r1)
		}
	}
	r2, _ := s.Apply(ctx, meshWithTimeout(t, "2s"))
	for _, fl := range fls {
		meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
			if f, rev := fl.src.Current(); rev != r2 || ordersTimeout(f) != "2s" {
				return fmt.Errorf("follower at revision %d (%s), want %d", rev, ordersTimeout(f), r2)
			}
			return nil
		})
	}
	// A closed follower keeps its last version; the others go on.
	fls[0].src.Close()
	fls[0].src.Close()
	r3, _ := s.Apply(ctx, meshWithTimeout(t, "3s"))
	meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
		if _, rev := fls[1].src.Current(); rev != r3 {
			return fmt.Errorf("follower at revision %d, want %d", rev, r3)
		}
		return nil
	})
	if _, rev := fls[0].src.Current(); rev != r2 {
		t.Errorf("closed follower at revision %d, want %d", rev, r2)
	}
	// A follower of a follower follows too; so does one of a Static.
	ff := fls[2].src.Follow(live.SourceConfig{})
	defer ff.Close()
	meshtest.CheckFor(t, wait, 5*time.Millisecond, func() error {
		if _, rev := ff.Current(); rev != r3 {
			return fmt.Errorf("follower's follower at revision %d, want %d", rev, r3)
		}
		return nil
	})
	st := live.Static(meshWithTimeout(t, "9s")).Follow(live.SourceConfig{})
	if f, rev := st.Current(); rev != 1 || ordersTimeout(f) != "9s" {
		t.Errorf("follower of a Static: revision %d (%s)", rev, ordersTimeout(f))
	}
	for i, want := range [][]uint64{{r1, r2}, {r1, r2, r3}, {r1, r2, r3}} {
		fls[i].mu.Lock()
		if fmt.Sprint(fls[i].seen) != fmt.Sprint(want) {
			t.Errorf("follower %d saw revisions %v, want %v", i, fls[i].seen, want)
		}
		fls[i].mu.Unlock()
	}
}

// TestEgressTravels: the mesh file's egress section (issue 19) reaches an
// agent's Source through the bucket as every other part does: applied,
// watched, and the same file on arrival.
func TestEgressTravels(t *testing.T) {
	e := newEnv(t)
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices: { web: {} }\negress:\n  mode: registry_only\n  hosts:\n    api.example.com: { policy: { timeout: 2s } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	src := live.WatchBucket(e.nc, live.SourceConfig{})
	t.Cleanup(func() { src.Close() })
	if _, err := e.store.Apply(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	meshtest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		got, _ := src.Current()
		if got == nil || got.Egress == nil {
			return errors.New("no egress section yet")
		}
		if d := policies.Diff(f, got); len(d) > 0 {
			return fmt.Errorf("the file differs on arrival: %v", d)
		}
		return nil
	})
	got, _ := src.Current()
	if entry, allowed := got.EgressEntry("api.example.com"); !allowed || got.EgressPolicy(entry).Timeout.D() != 2*time.Second {
		t.Errorf("on arrival: api.example.com allowed %v, timeout %v", allowed, got.EgressPolicy(entry).Timeout)
	}
	if _, allowed := got.EgressEntry("other.example.com"); allowed {
		t.Error("on arrival: an unlisted host is allowed in registry_only mode")
	}
}
