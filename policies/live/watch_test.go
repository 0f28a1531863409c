package live_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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

// holds waits up to within until src holds the file whose orders timeout
// is want, and returns its revision.
func holds(t *testing.T, src *live.Source, want string, within time.Duration) uint64 {
	t.Helper()
	var rev uint64
	meshtest.CheckFor(t, within, 2*time.Millisecond, func() error {
		var f *policies.File
		f, rev = src.Current()
		if got := ordersTimeout(f); got != want {
			return fmt.Errorf("orders timeout %s at revision %d, want %s", got, rev, want)
		}
		return nil
	})
	return rev
}

// TestWatchRecreatedBucket: the store is the truth, whatever its
// revisions. A purge of the key keeps the file applied (and says so); so
// does the bucket's deletion; a bucket made anew numbers its revisions
// from 1 again, and its first apply is applied within a second.
func TestWatchRecreatedBucket(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	var logs logBuffer
	src, err := live.WatchKV(ctx, e.nc, live.SourceConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, d := range []string{"1s", "2s", "3s"} {
		if _, err := e.store.Apply(ctx, meshWithTimeout(t, d)); err != nil {
			t.Fatal(err)
		}
	}
	if rev := holds(t, src, "3s", time.Second); rev != 3 {
		t.Fatalf("at revision %d, want 3", rev)
	}

	// A purge of the key is heard of: the file stays.
	if err := e.store.KV().Purge(ctx, live.Key); err != nil {
		t.Fatal(err)
	}
	checkLog(t, &logs, "level=WARN", "the store holds no mesh file", "kept=3")
	if rev := holds(t, src, "3s", time.Second); rev != 3 {
		t.Fatalf("after a purge: revision %d, want 3 kept", rev)
	}
	r, err := e.store.Apply(ctx, meshWithTimeout(t, "4s"))
	if err != nil {
		t.Fatal(err)
	}
	if got := holds(t, src, "4s", time.Second); got != r {
		t.Fatalf("after the purge: revision %d, want %d", got, r)
	}

	// The bucket deleted and made anew, as a broker restarted on a new
	// store would have it: revision 1 again, applied all the same.
	if err := e.js.DeleteKeyValue(ctx, live.Bucket); err != nil {
		t.Fatal(err)
	}
	store, err := live.OpenStore(ctx, e.js)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err = store.Apply(ctx, meshWithTimeout(t, "5s"))
	if err != nil || r != 1 {
		t.Fatalf("apply to the new bucket: revision %d, %v; want 1", r, err)
	}
	if got := holds(t, src, "5s", time.Second); got != 1 {
		t.Errorf("revision %d, want 1", got)
	}
	t.Logf("revision 1 of the new bucket applied after %v", time.Since(start))
	checkLog(t, &logs, "applied mesh file", "revision=1", "digest="+src.Digest()[:12])
}

// authConf is a broker configuration with an admin and users that lack
// one of the rights a watch uses: deaf may not subscribe to the bucket's
// writes, blind may not ask JetStream anything.
const authConf = `jetstream: enabled
authorization {
  users = [
    { user: admin, password: admin }
    { user: deaf, password: deaf, permissions: { subscribe: { deny: ["$KV.>"] } } }
    { user: blind, password: blind, permissions: { publish: { deny: ["$JS.>"] } } }
  ]
}
`

// storeDeniedConf is authConf but that the admin may not ask JetStream
// anything: its store does not answer it.
const storeDeniedConf = `jetstream: enabled
authorization {
  users = [
    { user: admin, password: admin, permissions: { publish: { deny: ["$JS.>"] } } }
  ]
}
`

func writeConf(t *testing.T, conf string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newAuthEnv(t *testing.T) (*env, func(user string) *nats.Conn) {
	t.Helper()
	conf := writeConf(t, authConf)
	e := &env{}
	connect := func(user string) *nats.Conn {
		t.Helper()
		// Permission violations are expected: quiet.
		return meshtest.Conn(t, e.b, nats.UserInfo(user, user), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	}
	e.b = meshtest.Broker(t, func(c *broker.Config) { c.ConfigFile = conf })
	e.nc = connect("admin")
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if e.store, err = live.OpenStore(t.Context(), e.js); err != nil {
		t.Fatal(err)
	}
	return e, connect
}

// restart stops e's broker and starts another on its address, with the
// configuration file conf and opts: the same mesh's broker, restarted in
// another state.
func (e *env) restart(t *testing.T, conf string, opts ...func(*broker.Config)) {
	t.Helper()
	u, err := url.Parse(e.b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e.b = meshtest.Broker(t, append([]func(*broker.Config){func(c *broker.Config) {
		c.Listen, c.ConfigFile, c.LameDuckDuration = u.Host, writeConf(t, conf), -1
	}}, opts...)...)
}

// TestWatchPoll: a write the watch does not hear of (here: it may not
// subscribe to the writes; in life, a message core NATS lost) is applied
// at the next poll; so is a purge of the bucket's stream, which publishes
// nothing.
func TestWatchPoll(t *testing.T) {
	e, connect := newAuthEnv(t)
	ctx := t.Context()
	if _, err := e.store.Apply(ctx, meshWithTimeout(t, "1s")); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	src, err := live.WatchKV(ctx, connect("deaf"), live.SourceConfig{Poll: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	holds(t, src, "1s", time.Second)
	if _, err := e.store.Apply(ctx, meshWithTimeout(t, "2s")); err != nil {
		t.Fatal(err)
	}
	holds(t, src, "2s", time.Second)

	st, err := e.js.Stream(ctx, "KV_"+live.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	checkLog(t, &logs, "level=WARN", "the store holds no mesh file", "kept=2")
	holds(t, src, "2s", time.Second)
}

// TestWatchCache: each version applied from the store is kept on disk
// (atomically, 0600, with the mesh it came from); a watch of the same
// mesh that starts while the store cannot be reached, has no JetStream,
// or holds only a bad file, applies the kept file, and the store's
// version replaces it as soon as there is one. A store that answers and
// holds no file is the truth: the kept file is not used.
func TestWatchCache(t *testing.T) {
	e, connect := newAuthEnv(t)
	ctx := t.Context()
	cache := filepath.Join(t.TempDir(), "state", "orders", "mesh.json")
	src, err := live.WatchKV(ctx, e.nc, live.SourceConfig{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a cache file before any apply: %v", err)
	}
	r1, _ := e.store.Apply(ctx, meshWithTimeout(t, "1s"))
	holds(t, src, "1s", time.Second)
	r2, _ := e.store.Apply(ctx, meshWithTimeout(t, "2s"))
	holds(t, src, "2s", time.Second)
	digest := src.Digest()
	var kept struct {
		Revision uint64
		Digest   string
		File     json.RawMessage
	}
	meshtest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
		data, err := os.ReadFile(cache)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &kept); err != nil {
			return err
		}
		if kept.Revision != r2 {
			return fmt.Errorf("cache at revision %d, want %d", kept.Revision, r2)
		}
		return nil
	})
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Dir(cache)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	if kept.Digest != digest {
		t.Errorf("cache digest %s, want %s", kept.Digest, digest)
	}
	if entries, _ := os.ReadDir(filepath.Dir(cache)); len(entries) != 1 {
		t.Errorf("the cache directory holds %d files, want the cache alone (no temporary file left)", len(entries))
	}
	if r1 >= r2 {
		t.Fatalf("revisions %d, %d", r1, r2)
	}
	src.Close()

	start := func(t *testing.T, nc *nats.Conn) (*live.Source, *logBuffer) {
		t.Helper()
		var logs logBuffer
		src, err := live.WatchKV(ctx, nc, live.SourceConfig{Cache: cache, FetchTimeout: 300 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		return src, &logs
	}
	usedCache := func(t *testing.T, src *live.Source, logs *logBuffer) {
		t.Helper()
		if f, rev := src.Current(); rev != r2 || ordersTimeout(f) != "2s" || src.Digest() != digest {
			t.Fatalf("started at revision %d (%s), want the kept %d", rev, ordersTimeout(f), r2)
		}
		checkLog(t, logs, fmt.Sprintf("using the last good mesh file kept at %s, revision %d", cache, r2))
	}

	t.Run("store empty", func(t *testing.T) {
		if err := e.store.KV().Purge(ctx, live.Key); err != nil {
			t.Fatal(err)
		}
		src, logs := start(t, e.nc)
		if f, rev := src.Current(); f != nil {
			t.Fatalf("the store holds no file, and the watch starts with revision %d (%s)", rev, ordersTimeout(f))
		}
		checkLog(t, logs, "level=WARN", "refused the last good mesh file kept on disk: the store answers and holds no mesh file")
		// The store's next version is applied.
		if _, err := e.store.Apply(ctx, meshWithTimeout(t, "3s")); err != nil {
			t.Fatal(err)
		}
		holds(t, src, "3s", time.Second)
		checkLog(t, logs, "applied mesh file", "source=\"bucket natsmesh-policies\"")
	})
	// keep applies a version with orders timeout d and has a watch with
	// the cache apply it.
	keep := func(t *testing.T, d string) {
		t.Helper()
		rev, err := e.store.Apply(ctx, meshWithTimeout(t, d))
		if err != nil {
			t.Fatal(err)
		}
		w, err := live.WatchKV(ctx, e.nc, live.SourceConfig{Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if _, got := w.Current(); got != rev {
			t.Fatalf("watch at revision %d, want %d", got, rev)
		}
		r2, digest = rev, w.Digest()
	}

	t.Run("store holds a bad file", func(t *testing.T) {
		keep(t, "2s")
		if _, err := e.store.KV().Put(ctx, live.Key, []byte("version: 2\n")); err != nil {
			t.Fatal(err)
		}
		src, logs := start(t, e.nc)
		usedCache(t, src, logs)
		checkLog(t, logs, "refused a mesh file that does not parse")
	})

	// The last two restart the broker: the same mesh (address and user).
	t.Run("store unreachable", func(t *testing.T) {
		keep(t, "2s")
		// The admin's requests are dropped now: no answer within
		// FetchTimeout.
		e.restart(t, storeDeniedConf)
		src, logs := start(t, connect("admin"))
		usedCache(t, src, logs)
		checkLog(t, logs, "level=WARN", "cannot reach the mesh file store")
	})

	t.Run("no JetStream", func(t *testing.T) {
		e.restart(t, authConf, func(c *broker.Config) { c.NoJetStream = true })
		src, logs := start(t, connect("admin"))
		usedCache(t, src, logs)
		checkLog(t, logs, "no mesh file bucket yet")
	})

	t.Run("cache unusable", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "mesh.json")
		if err := os.WriteFile(bad, []byte(`{"revision": 3, "digest": "00", "file": {}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		b := meshtest.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
		var logs logBuffer
		src, err := live.WatchKV(ctx, meshtest.Conn(t, b), live.SourceConfig{Cache: bad, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if f, _ := src.Current(); f != nil {
			t.Errorf("a bad cache file applied")
		}
		checkLog(t, &logs, "level=WARN", "cannot use the last good mesh file kept on disk")
	})
}

// TestWatchManyOnOneConn: several watches on one connection (the agents
// of one process) each get their own answers.
func TestWatchManyOnOneConn(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	var srcs []*live.Source
	for range 5 {
		src, err := live.WatchKV(ctx, e.nc, live.SourceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		srcs = append(srcs, src)
	}
	for _, d := range []string{"1s", "2s", "3s"} {
		if _, err := e.store.Apply(ctx, meshWithTimeout(t, d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range srcs {
		holds(t, src, "3s", time.Second)
	}
}

// TestWatchCloseQuiet: closing a watch whose request is still out (the
// store does not answer) returns at once and logs nothing about it.
func TestWatchCloseQuiet(t *testing.T) {
	_, connect := newAuthEnv(t)
	var logs logBuffer
	before := live.Fetches()
	src := live.WatchBucket(connect("blind"), live.SourceConfig{FetchTimeout: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error { // the first request is out
		if live.Fetches() == before {
			return errors.New("no request yet")
		}
		return nil
	})
	start := time.Now()
	src.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if l := logs.String(); l != "" {
		t.Errorf("logged at Close:\n%s", l)
	}
}

// fakeStore answers the bucket's direct gets, on a broker without
// JetStream, with the version the test sets: it plays the replica that
// answers.
type fakeStore struct {
	mu      sync.Mutex
	answers int
	next    func(n int) *nats.Msg // the answer to the n-th request, from 1
}

// storeAnswer is a direct get's answer: the version data at revision rev
// of generation gen ("": none), with JetStream's headers.
func storeAnswer(rev uint64, gen string, data []byte) *nats.Msg {
	h := nats.Header{}
	h.Set("Nats-Stream", "KV_"+live.Bucket)
	h.Set("Nats-Subject", live.WriteSubject)
	h.Set("Nats-Sequence", strconv.FormatUint(rev, 10))
	if gen != "" {
		h.Set(live.GenerationHeader, gen)
	}
	return &nats.Msg{Header: h, Data: data}
}

func newFakeStore(t *testing.T, b *broker.Broker) *fakeStore {
	t.Helper()
	fs := &fakeStore{}
	nc := meshtest.Conn(t, b)
	if _, err := nc.Subscribe(live.DirectGetSubject, func(m *nats.Msg) {
		fs.mu.Lock()
		fs.answers++
		a := fs.next(fs.answers)
		fs.mu.Unlock()
		m.RespondMsg(a)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// answer sets what the store answers from now on.
func (fs *fakeStore) answer(f func(n int) *nats.Msg) {
	fs.mu.Lock()
	fs.next = f
	fs.mu.Unlock()
}

func (fs *fakeStore) count() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.answers
}

func meshJSON(t *testing.T, timeout string) []byte {
	t.Helper()
	data, err := meshWithTimeout(t, timeout).JSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestWatchNeverGoesBack: a direct get may be answered by any replica of
// the bucket (nats-server 2.15 subscribes every replica that was once
// current to the direct-get subjects, in one queue group, and never checks
// it still is), so after revision 2 from the leader a poll can be answered
// by a replica that has only revision 1. Within one generation of the
// bucket the watch never goes back to a lower revision; a version of
// another generation (the bucket made anew) is applied whatever its
// revision; one without a generation (not written by Store) is taken for
// one of the generation held.
func TestWatchNeverGoesBack(t *testing.T) {
	b := meshtest.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
	fs := newFakeStore(t, b)
	const gen, anew = "2026-01-02T03:04:05.000000001Z", "2026-01-02T03:04:06.000000002Z"
	v1, v2, v3, v4 := meshJSON(t, "1s"), meshJSON(t, "2s"), meshJSON(t, "3s"), meshJSON(t, "4s")
	fs.answer(func(n int) *nats.Msg {
		if n == 1 {
			return storeAnswer(2, gen, v2) // the leader
		}
		return storeAnswer(1, gen, v1) // a replica behind
	})
	var logs logBuffer
	src := live.WatchBucket(meshtest.Conn(t, b), live.SourceConfig{Poll: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer src.Close()
	holds(t, src, "2s", 2*time.Second)
	// Some polls, each answered by the replica behind.
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := fs.count(); n < 4 {
			return fmt.Errorf("%d answers so far", n)
		}
		return nil
	})
	if f, rev := src.Current(); rev != 2 {
		t.Fatalf("after holding revision 2 the watch went back to revision %d (orders timeout %s): a stale replica's answer rolled the mesh file back\n%s",
			rev, ordersTimeout(f), logs.String())
	}
	checkLog(t, &logs, "level=DEBUG", "answered an older version", "revision=1", "kept=2")

	// The bucket made anew: its revision 1 is applied.
	fs.answer(func(int) *nats.Msg { return storeAnswer(1, anew, v3) })
	if rev := holds(t, src, "3s", time.Second); rev != 1 {
		t.Fatalf("the new bucket's version at revision %d, want 1", rev)
	}
	checkLog(t, &logs, "applied mesh file", "revision=1", "generation="+anew)
	// A version without a generation is of the one held: revision 2 is
	// applied, and then revision 1 (of either) is older.
	fs.answer(func(int) *nats.Msg { return storeAnswer(2, "", v4) })
	holds(t, src, "4s", time.Second)
	at := fs.count()
	fs.answer(func(n int) *nats.Msg {
		if n%2 == 0 {
			return storeAnswer(1, "", v1)
		}
		return storeAnswer(1, anew, v3)
	})
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := fs.count(); n < at+4 {
			return fmt.Errorf("%d answers so far", n-at)
		}
		return nil
	})
	if f, rev := src.Current(); rev != 2 || ordersTimeout(f) != "4s" {
		t.Errorf("holding revision 2 without a generation, the watch went to revision %d (%s)", rev, ordersTimeout(f))
	}
}

// TestWatchIgnoresDirectGetAnswers: any service's key can have JetStream's
// direct get deliver its answer to a subject of its choosing in its own
// account (docs/security.md), such as the 404 of a key that does not exist
// or the stored file, onto WriteSubject, which every watch of that account
// hears. Neither is a write (a write never carries JetStream's Status or
// Nats-Stream header): the watch asks the store nothing for them. Nor does
// it for a write of the version it holds. Here a fake JetStream answers
// the current version, and the forged messages are published as the
// broker delivers them.
func TestWatchIgnoresDirectGetAnswers(t *testing.T) {
	b := meshtest.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
	fs := newFakeStore(t, b)
	data := meshJSON(t, "1s")
	fs.answer(func(int) *nats.Msg { return storeAnswer(1, "", data) })
	nc := meshtest.Conn(t, b)
	src := live.WatchBucket(meshtest.Conn(t, b), live.SourceConfig{Poll: time.Hour})
	defer src.Close()
	holds(t, src, "1s", 2*time.Second)
	meshtest.CheckFor(t, time.Second, time.Millisecond, func() error {
		if fs.count() != 1 {
			return fmt.Errorf("%d requests at start", fs.count())
		}
		return nil
	})
	before := live.Fetches()
	notFound := nats.NewMsg(live.WriteSubject)
	notFound.Header.Set("Status", "404")
	notFound.Header.Set("Description", "Message Not Found")
	stored := storeAnswer(1, "", meshJSON(t, "9s")) // another key's, say
	stored.Subject = live.WriteSubject
	same := nats.NewMsg(live.WriteSubject) // the version held, written again
	same.Data = data
	for _, m := range []*nats.Msg{notFound, stored, same} {
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Each would have the watch ask at once, and again and again for
	// 2 s: a bounded wait, which proves it by what did not happen.
	time.Sleep(300 * time.Millisecond)
	if n := live.Fetches() - before; n != 0 {
		t.Errorf("three messages that are no new write made the watch ask the store %d times, want none", n)
	}
	// A genuine write follows, asked for once.
	next := meshJSON(t, "2s")
	fs.answer(func(int) *nats.Msg { return storeAnswer(2, "", next) })
	write := nats.NewMsg(live.WriteSubject)
	write.Data = next
	if err := nc.PublishMsg(write); err != nil {
		t.Fatal(err)
	}
	holds(t, src, "2s", 2*time.Second)
	if n := live.Fetches() - before; n != 1 {
		t.Errorf("one write made the watch ask the store %d times, want once", n)
	}
}

// TestWatchFetchesBounded: however many writes a watch hears (here, on
// an open broker where anyone may publish there, a write every 10 ms for
// 2 s that the store never stores: each would have the watch ask again
// and again for 2 s), it asks the store at most 20 times at once and 5
// times a second after that.
func TestWatchFetchesBounded(t *testing.T) {
	b := meshtest.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
	fs := newFakeStore(t, b)
	data := meshJSON(t, "1s")
	fs.answer(func(int) *nats.Msg { return storeAnswer(1, "", data) })
	src := live.WatchBucket(meshtest.Conn(t, b), live.SourceConfig{Poll: time.Hour})
	defer src.Close()
	holds(t, src, "1s", 2*time.Second)
	nc := meshtest.Conn(t, b)
	before, start := live.Fetches(), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := range 200 {
		<-tick.C
		m := nats.NewMsg(live.WriteSubject)
		m.Data = meshJSON(t, strconv.Itoa(i+10)+"s")
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	// The last write heard is asked for until 2 s after it: watch 2 s
	// more, which proves the bound by what did not happen.
	time.Sleep(2 * time.Second)
	n, elapsed := live.Fetches()-before, time.Since(start)
	if limit := 20 + int64(5*elapsed.Seconds()) + 1; n > limit {
		t.Errorf("200 writes heard made the watch ask the store %d times in %v, want at most %d", n, elapsed.Round(time.Millisecond), limit)
	}
	if n < 20 {
		t.Errorf("200 writes heard made the watch ask the store %d times, want it to keep asking (at least 20)", n)
	}
	t.Logf("200 writes heard in 2 s: %d requests in %v", n, elapsed.Round(time.Millisecond))
}

// TestWatchWriteNotErasedByACopyOfTheHeld: a copy of the version held,
// bare (any service's key can have JetStream's direct get deliver one on
// WriteSubject, docs/security.md), heard after a genuine write of another
// version, does not make the watch forget that write: asked while the
// stream has not stored it yet (the store answers the version held), the
// watch asks again and takes it. It forgot it, and went on holding the
// old version until its next poll (30 s by default; the securitytest
// TestWatchForgedCues saw it once under load: the forged copies' answers
// came after the write).
func TestWatchWriteNotErasedByACopyOfTheHeld(t *testing.T) {
	b := meshtest.Broker(t, func(c *broker.Config) { c.NoJetStream = true })
	fs := newFakeStore(t, b)
	held := meshJSON(t, "1s")
	fs.answer(func(int) *nats.Msg { return storeAnswer(1, "", held) })
	nc := meshtest.Conn(t, b)
	src := live.WatchBucket(meshtest.Conn(t, b), live.SourceConfig{Poll: time.Hour})
	defer src.Close()
	holds(t, src, "1s", 2*time.Second)
	next := meshJSON(t, "2s")
	first := fs.count()
	// The first request after the write finds the stream without it yet.
	fs.answer(func(n int) *nats.Msg {
		if n == first+1 {
			return storeAnswer(1, "", held)
		}
		return storeAnswer(2, "", next)
	})
	write := nats.NewMsg(live.WriteSubject)
	write.Data = next
	copyOfHeld := nats.NewMsg(live.WriteSubject)
	copyOfHeld.Data = held
	for _, m := range []*nats.Msg{write, copyOfHeld} {
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	holds(t, src, "2s", 3*time.Second)
}
