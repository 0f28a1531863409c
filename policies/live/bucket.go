package live

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

// Defaults of a bucket's watch (see SourceConfig).
const (
	// DefaultPoll is how often a watch asks the store for the current
	// version when it heard of no change.
	DefaultPoll = 30 * time.Second
	// DefaultFetchTimeout bounds one request for the current version.
	DefaultFetchTimeout = 2 * time.Second
)

// The subjects a watch uses, and the only JetStream rights it needs (the
// policy store's exports, docs/security.md "The policy store"):
// subscribe WriteSubject, and request DirectGetSubject.
const (
	// WriteSubject is where each write of the mesh file (an apply, a
	// delete, a purge) is published; subscribers hear it as it is written.
	WriteSubject = "$KV." + Bucket + "." + Key
	// DirectGetSubject asks the bucket's stream (any of its replicas) for
	// the last message of WriteSubject: JetStream's direct get.
	DirectGetSubject = "$JS.API.DIRECT.GET.KV_" + Bucket + "." + WriteSubject
)

const (
	// expectFor is how long a watch that heard of a write goes on asking
	// for it, quickly, while the store still answers the version before:
	// the write may reach the subscriber before the stream stores it, or
	// a replica that has not stored it yet may answer. A write the stream
	// refused (ApplyIf over a stale revision) is never stored.
	expectFor = 2 * time.Second
	// fetchBurst and fetchRate bound the requests of one watch, whatever
	// it hears: at most fetchBurst at once, fetchRate a second after that.
	// A change heard of takes one or two (the second 0.5 ms after the
	// first, when the write reached the watch before the stream stored
	// it), so ten changes in a row go through without waiting (5 and 2
	// held the first change of a bucket made anew, after a purge and four
	// applies, for 0.5 s).
	fetchBurst = 20
	fetchRate  = 5
	// maxRetry caps the backoff of those requests.
	maxRetry = 200 * time.Millisecond
	// minBackoff is the first wait after a request the store did not
	// answer; it doubles up to the poll interval.
	minBackoff = 100 * time.Millisecond
)

// WatchBucket watches the mesh file in the Bucket over nc and returns at
// once; Current returns nil until a good version is held (or, with
// cfg.Cache, the one kept on disk). It needs no JetStream consumer nor any
// JetStream API but direct get: it subscribes WriteSubject and asks for
// the current version (DirectGetSubject) at start, after each write it
// hears, after each reconnect and every cfg.Poll, one request at a time.
//
// The store is the truth, and the watch never goes back: it holds the
// bucket's generation (GenerationHeader), revision and SHA-256 digest of
// the version it applied, and applies a version the store answers whose
// digest differs if it is of another generation (a bucket made anew
// numbers its revisions from 1 again), or of the same one at a higher
// revision. A lower revision of the generation held is the answer of a
// replica that is behind (any replica answers a direct get) and is
// ignored; a version without the header (written without Store) is taken
// for one of the generation held. A version that does not parse is
// refused and logged, once, and the last good one stays; so it does when
// the store holds no file (the bucket is empty, its key deleted or purged,
// or it is not there at all) or cannot be reached. Each applied version is
// logged at Info level with its revision, digest and generation, and
// written to cfg.Cache.
//
// A message on WriteSubject is only a cue to ask the store, and only a
// write is: one with JetStream's Nats-Stream or Status header is a direct
// get's answer that some service had delivered there, and is ignored, as
// is a write of the version held. However many writes it hears, a watch
// makes at most 20 requests at once and 5 a second after that.
//
// The answers to its requests arrive on the pair inbox of the
// connection's inbox prefix and JetStream (wire.PairInbox(name,
// wire.PeerJS) for a connection with the mesh's prefix, "_INBOX.JS"
// otherwise), which the broker lets only JetStream publish to. JetStream
// answers there for anyone in the account who asks the direct get with
// that reply subject, and whoever holds the connection's key reads that
// inbox, so each request's reply subject ends in a random nonce of its
// own: an answer to it is the store's answer to this request, never a 404
// or an old value that someone had JetStream put there before.
func WatchBucket(nc *nats.Conn, cfg SourceConfig) *Source {
	s := newSource(cfg)
	w := &bucketWatch{
		src:     s,
		nc:      nc,
		poll:    cfg.Poll,
		timeout: cfg.FetchTimeout,
		cache:   cfg.Cache,
		kick:    make(chan struct{}, 1),
		first:   s.loaded,
	}
	if w.poll <= 0 {
		w.poll = DefaultPoll
	}
	if w.timeout <= 0 {
		w.timeout = DefaultFetchTimeout
	}
	prefix := nc.Opts.InboxPrefix
	if prefix == "" {
		prefix = nats.InboxPrefix[:len(nats.InboxPrefix)-1] // "_INBOX"
	}
	// A token of its own, so that several watches on one connection
	// never read each other's answers (random, as each request's nonce
	// is: see fetch).
	w.reply = prefix + "." + wire.PeerJS + "." + rand.Text()
	var err error
	if w.writeSub, err = nc.Subscribe(WriteSubject, w.heard); err != nil {
		s.log.Warn("live: cannot subscribe to the mesh file's writes; asking every "+w.poll.String(), "subject", WriteSubject, "err", err)
	}
	w.status = nc.StatusChanged(nats.CONNECTED)
	s.cleanup = w.release
	go func() {
		defer close(s.done)
		w.run()
	}()
	return s
}

// WatchKV is WatchBucket that waits, up to ctx, for the store's first
// answer (a file, none, or no bucket at all), or for a file to hold (the
// one cfg.Cache keeps, when the store has no good file or does not answer
// within cfg.FetchTimeout), so that Current is up to date from the start.
// A store that does not answer is asked again, sooner at first. It
// returns an error if ctx ends first.
func WatchKV(ctx context.Context, nc *nats.Conn, cfg SourceConfig) (*Source, error) {
	s := WatchBucket(nc, cfg)
	select {
	case <-s.Loaded():
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("live: watch bucket %s: %w", Bucket, ctx.Err())
	}
}

// bucketWatch is the state of one bucket's watch. Only its run goroutine
// touches it, but for expect, which heard sets.
type bucketWatch struct {
	src     *Source
	nc      *nats.Conn
	poll    time.Duration
	timeout time.Duration
	cache   string

	kick     chan struct{} // a write heard; holds one, so a burst makes one request
	status   chan nats.Status
	writeSub *nats.Subscription
	reply    string        // the prefix of the requests' reply subjects
	n        uint64        // requests made
	first    chan struct{} // the Source's loaded, until closed

	mu     sync.Mutex
	expect *expectation

	gen        string // the generation of the version held ("" none named)
	state      storeState
	refused    [sha256.Size]byte // the last version refused, logged once
	older      [sha256.Size]byte // the last older version ignored, logged once
	tokens     float64           // requests allowed now (fetchBurst, fetchRate)
	tokensAt   time.Time         // when tokens was last brought up to date
	mesh       *meshID           // the connection's, for the cache; see meshOf
	cacheTried bool
	cacheErr   string // the last failure to write the cache, logged once
}

// expectation is a write heard and not yet answered by the store.
type expectation struct {
	deleted bool // a delete or purge
	digest  [sha256.Size]byte
	at      time.Time
	tries   int
}

// storeState is what the store answered last, for logging changes only.
type storeState int

const (
	stateUnknown     storeState = iota
	stateFile                   // holds a file
	stateEmpty                  // holds none (empty bucket, deleted or purged key)
	stateNoBucket               // nobody answers for the bucket: none made yet, or JetStream down
	stateUnreachable            // no answer in time, or an error
)

func (w *bucketWatch) release() {
	if w.writeSub != nil {
		w.writeSub.Unsubscribe()
	}
	w.nc.RemoveStatusListener(w.status)
}

// heard is told of each write of the mesh file as it is published (the
// stream may yet refuse it): the watch asks the store until it answers
// that version, or for expectFor. It ignores what is no write, and a
// write of the version held.
//
// Anyone of the account can have JetStream's direct get answer on
// WriteSubject too (docs/security.md, "The policy store"), as often as it
// likes, and each message there would make every watcher of the account
// read the whole file: such an answer is no write, and is ignored (it
// carries JetStream's headers or a status, or, asked without headers, it
// is the stored file, the one held, or nothing).
func (w *bucketWatch) heard(m *nats.Msg) {
	if m.Header.Get("Status") != "" || m.Header.Get("Nats-Stream") != "" {
		return
	}
	e := &expectation{at: time.Now()}
	switch m.Header.Get(kvOperation) {
	case "":
		if len(m.Data) == 0 {
			return // no mesh file is empty
		}
		e.digest = sha256.Sum256(m.Data)
		if held := w.src.cur.Load(); held != nil && held.digest == e.digest {
			// Nothing new to fetch. A write of another version heard
			// before is still expected: this may be no write at all but
			// a bare copy of the stored file that any service's key can
			// have direct get deliver here, heard after that write
			// (TestWatchWriteNotErasedByACopyOfTheHeld). If it is a write
			// (the version held, written again over the other), the
			// expectation is given up after expectFor, a few requests.
			return
		}
	case "DEL", "PURGE":
		e.deleted = true
	default:
		return
	}
	w.mu.Lock()
	w.expect = e
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *bucketWatch) run() {
	t := time.NewTimer(w.poll)
	defer t.Stop()
	backoff := time.Duration(0) // after a request the store did not answer
	for {
		if d := w.reserve(time.Now()); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-w.src.stop:
				return
			}
		}
		r := w.fetch()
		select {
		case <-w.src.stop: // Close: nothing to apply, nothing to log
			return
		default:
		}
		w.handle(r)
		if w.first != nil && (r.state != stateUnreachable || w.src.cur.Load() != nil) {
			close(w.first)
			w.first = nil
		}
		next := w.poll
		if r.state == stateUnreachable {
			// Lost (a request to a server that just went away), or the
			// store is down: ask again soon, then less and less often.
			backoff = min(max(2*backoff, minBackoff), w.poll)
			next = backoff
		} else {
			backoff = 0
		}
		if d := w.retryIn(r); d > 0 {
			next = min(next, d)
		}
		t.Reset(next) // no stale tick survives a Reset (Go 1.23 timers)
		select {
		case <-w.kick:
		case <-w.status: // reconnected: a write may have been missed
		case <-t.C:
		case <-w.src.stop:
			return
		}
	}
}

// reserve takes one request from the watch's allowance (fetchBurst at
// once, fetchRate a second) and returns how long to wait before making
// it.
func (w *bucketWatch) reserve(now time.Time) time.Duration {
	if w.tokensAt.IsZero() {
		w.tokens = fetchBurst
	} else {
		w.tokens = min(fetchBurst, w.tokens+now.Sub(w.tokensAt).Seconds()*fetchRate)
	}
	w.tokensAt = now
	w.tokens--
	if w.tokens >= 0 {
		return 0
	}
	return time.Duration(-w.tokens / fetchRate * float64(time.Second))
}

// fetches counts the requests of every watch in the process, for
// BenchmarkPropagation.
var fetches atomic.Int64

// answer is the store's answer to one request.
type answer struct {
	found   bool // the stream holds a message for Key
	deleted bool // ... which is a delete or a purge
	rev     uint64
	gen     string // its GenerationHeader, if any
	data    []byte
	state   storeState
	err     error
}

// fetch asks the store for the current version and waits for its answer,
// up to the fetch timeout or Close.
func (w *bucketWatch) fetch() answer {
	fetches.Add(1)
	w.n++
	// <n>-<nonce>: the nonce (128 random bits) keeps the subject a secret
	// of this request. Its reply subjects are no secret once answered (a
	// holder of the connection's key subscribes to its whole inbox), and
	// with a counter alone anyone in the account could have JetStream
	// answer the next request before the store did, by asking the direct
	// get of a missing key with that reply subject: a 404, read as an
	// empty store, which keeps the file held for good.
	reply := w.reply + "." + strconv.FormatUint(w.n, 10) + "-" + rand.Text()
	// A subscription of the request's own subject, not one of all the
	// watch's: the holder of the key can have JetStream answer under the
	// others as fast as it answers, and such a flood, filling one
	// subscription's buffer, made the store's answer a slow consumer's
	// loss while it went on.
	answers := make(chan *nats.Msg, 1)
	sub, err := w.nc.ChanSubscribe(reply, answers)
	if err != nil {
		return answer{state: stateUnreachable, err: fmt.Errorf("subscribing to the store's answer: %w", err)}
	}
	defer sub.Unsubscribe()
	if err := w.nc.PublishRequest(DirectGetSubject, reply, nil); err != nil {
		return answer{state: stateUnreachable, err: err}
	}
	t := time.NewTimer(w.timeout)
	defer t.Stop()
	select {
	case m := <-answers:
		return readAnswer(m)
	case <-t.C:
		return answer{state: stateUnreachable, err: fmt.Errorf("no answer from the store within %s", w.timeout)}
	case <-w.src.stop:
		return answer{state: stateUnreachable, err: errors.New("closed")}
	}
}

// readAnswer reads a direct get's answer: the message with its stream's
// headers, or a status without a body.
func readAnswer(m *nats.Msg) answer {
	switch status := m.Header.Get("Status"); status {
	case "":
	case "404":
		return answer{state: stateEmpty}
	case "503":
		return answer{state: stateNoBucket}
	default:
		return answer{state: stateUnreachable, err: fmt.Errorf("the store answered status %s %s", status, m.Header.Get("Description"))}
	}
	rev, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return answer{state: stateUnreachable, err: fmt.Errorf("the store's answer has no valid Nats-Sequence: %q", m.Header.Get("Nats-Sequence"))}
	}
	a := answer{found: true, rev: rev, gen: m.Header.Get(GenerationHeader), data: m.Data, state: stateFile}
	if op := m.Header.Get(kvOperation); op != "" {
		a.deleted, a.state = true, stateEmpty
	}
	return a
}

// Get reads the current mesh file over nc as a watch does, by direct get
// alone: it needs no right but that request, and any replica of the
// bucket answers, so it works while the stream has no leader (an election
// after its server stopped), when Store's API calls wait. It returns
// ErrNotFound when the store holds no file (or no bucket answers), and
// the revision with the parse error of a version that does not parse.
func Get(ctx context.Context, nc *nats.Conn) (*policies.File, uint64, error) {
	m, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: DirectGetSubject})
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, 0, fmt.Errorf("%w (no JetStream server answers for the bucket %s)", ErrNotFound, Bucket)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("live: get: %w", err)
	}
	a := readAnswer(m)
	switch {
	case a.state == stateNoBucket:
		return nil, 0, fmt.Errorf("%w (no JetStream server answers for the bucket %s)", ErrNotFound, Bucket)
	case a.err != nil:
		return nil, 0, fmt.Errorf("live: get: %w", a.err)
	case a.state != stateFile:
		return nil, 0, ErrNotFound
	}
	f, err := policies.ParseStored(entryName(a.rev), a.data)
	if err != nil {
		return nil, a.rev, err
	}
	return f, a.rev, nil
}

// handle applies what the store answered: a version whose digest differs
// from the one held and that comes after it (see newer), if it parses.
func (w *bucketWatch) handle(a answer) {
	s := w.src
	held := s.cur.Load()
	w.logState(a, held)
	if a.state != stateFile {
		if held == nil {
			w.useCache(a)
		}
		return
	}
	d := sha256.Sum256(a.data)
	if held != nil && held.digest == d || d == w.refused {
		return
	}
	if held != nil && !w.newer(a, held) {
		if d != w.older {
			w.older = d
			s.log.Debug("live: the store answered an older version (a replica behind the one that answered before); keeping the one applied",
				"revision", a.rev, "generation", a.gen, "kept", held.rev, "kept_generation", w.gen)
		}
		return
	}
	f, err := policies.ParseStored(entryName(a.rev), a.data)
	if err != nil {
		w.refused = d
		s.log.Warn("live: refused a mesh file that does not parse; keeping the last good one",
			"revision", a.rev, "digest", shortDigest(d), "kept", s.keptRev(), "err", err)
		if held == nil {
			w.useCache(a)
		}
		return
	}
	w.refused = [sha256.Size]byte{}
	if a.gen != "" {
		w.gen = a.gen
	}
	s.apply(f, a.rev, d)
	s.log.Info("live: applied mesh file", "revision", a.rev, "digest", shortDigest(d), "generation", w.gen, "source", "bucket "+Bucket)
	if w.cache != "" {
		c := cached{Mesh: w.meshOf(), Generation: w.gen, Revision: a.rev, Digest: hex.EncodeToString(d[:])}
		if err := writeCache(w.cache, c, f); err != nil {
			if err.Error() != w.cacheErr {
				w.cacheErr = err.Error()
				s.log.Warn("live: cannot keep the mesh file on disk", "file", w.cache, "err", err)
			}
		} else {
			w.cacheErr = ""
		}
	}
}

// newer reports whether the store's version a comes after the one held:
// a version of another generation of the bucket (made anew, its revisions
// numbered from 1 again), or of the same at a higher revision. One
// without a generation (not written by Store) is taken for one of the
// generation held.
func (w *bucketWatch) newer(a answer, held *snapshot) bool {
	if a.gen != "" && a.gen != w.gen {
		return true
	}
	return a.rev > held.rev
}

// meshOf returns the mesh of the watch's connection, worked out once.
func (w *bucketWatch) meshOf() *meshID {
	if w.mesh == nil {
		m := connMesh(w.nc)
		w.mesh = &m
	}
	return w.mesh
}

// logState logs a change of what the store answers.
func (w *bucketWatch) logState(a answer, held *snapshot) {
	prev := w.state
	w.state = a.state
	if a.state == prev {
		return
	}
	log := w.src.log
	var kept []any
	if held != nil {
		kept = []any{"kept", held.rev, "digest", shortDigest(held.digest)}
	}
	switch a.state {
	case stateFile:
		if prev == stateUnreachable || prev == stateNoBucket {
			log.Info("live: the mesh file store answers again", "bucket", Bucket)
		}
	case stateEmpty:
		if held == nil {
			log.Info("live: the store holds no mesh file yet (natsmesh policy apply writes one)", "bucket", Bucket)
		} else {
			log.Warn("live: the store holds no mesh file (deleted or purged, or the bucket was made anew); keeping the one applied",
				append([]any{"bucket", Bucket, "revision", a.rev}, kept...)...)
		}
	case stateNoBucket:
		if held == nil {
			log.Info("live: no mesh file bucket yet, or no JetStream server answers for it", "bucket", Bucket)
		} else {
			log.Warn("live: no JetStream server answers for the mesh file bucket; keeping the file applied",
				append([]any{"bucket", Bucket}, kept...)...)
		}
	case stateUnreachable:
		log.Warn("live: cannot reach the mesh file store", append([]any{"bucket", Bucket, "err", a.err}, kept...)...)
	}
}

// useCache applies the file kept on disk, once, when the store has none
// to give at start (a is its first answer): when it cannot be asked (no
// answer, no bucket) or holds only a version that does not parse, not
// when it answers that it holds none. The kept file must be of this
// watch's mesh (meshID) and, when the store's answer names its generation,
// of that generation.
func (w *bucketWatch) useCache(a answer) {
	if w.cache == "" || w.cacheTried {
		return
	}
	w.cacheTried = true
	s := w.src
	k, err := readCache(w.cache)
	switch {
	case errors.Is(err, errNoCache):
		s.log.Info("live: no last good mesh file kept on disk", "file", w.cache)
		return
	case err != nil:
		s.log.Warn("live: cannot use the last good mesh file kept on disk", "file", w.cache, "err", err)
		return
	}
	refuse := func(why string) {
		s.log.Warn("live: refused the last good mesh file kept on disk: "+why, "file", w.cache, "revision", k.Revision)
	}
	if a.state == stateEmpty {
		refuse("the store answers and holds no mesh file (the kept file is for a start without the store, " +
			"and this may be another mesh, or the bucket made anew, before its first policy apply)")
		return
	}
	if why := w.meshOf().differs(k.Mesh); why != "" {
		refuse(why)
		return
	}
	if a.gen != "" && k.Generation != "" && a.gen != k.Generation {
		refuse(fmt.Sprintf("it is of the bucket generation %s, and the store's is %s (another mesh, or the bucket made anew)", k.Generation, a.gen))
		return
	}
	if s.cur.Load() != nil {
		return
	}
	w.gen = k.Generation
	s.apply(k.file, k.Revision, k.digest)
	s.log.Info(fmt.Sprintf("live: using the last good mesh file kept at %s, revision %d", w.cache, k.Revision),
		"revision", k.Revision, "digest", shortDigest(k.digest), "generation", k.Generation, "source", w.cache)
}

// retryIn returns how soon to ask again for a write heard that the store
// did not answer yet, or 0.
func (w *bucketWatch) retryIn(a answer) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.expect
	if e == nil {
		return 0
	}
	met := false
	switch {
	case a.err != nil || a.state == stateNoBucket:
	case e.deleted:
		met = a.state == stateEmpty
	default:
		met = a.state == stateFile && sha256.Sum256(a.data) == e.digest
	}
	if met || time.Since(e.at) > expectFor {
		w.expect = nil
		return 0
	}
	e.tries++
	return min(250*time.Microsecond<<min(e.tries, 12), maxRetry)
}

// shortDigest is the first 12 hex digits of a digest, for logs.
func shortDigest(d [sha256.Size]byte) string { return hex.EncodeToString(d[:6]) }

// Off is the path for [Watch] that means no mesh file: the built-in policy.
const Off = "off"

// Watch returns the Source a component (an agent, the gateway) runs with,
// by path: a local mesh file, watched with [WatchFile]; "" for the Bucket
// over nc, watched with [WatchBucket] (the default: the bucket need not
// exist yet), with cfg.Cache; Off for none, a nil Source (the built-in
// policy). ctx bounds the first load of a file only.
func Watch(ctx context.Context, nc *nats.Conn, path string, cfg SourceConfig) (*Source, error) {
	switch path {
	case Off:
		return nil, nil
	case "":
		return WatchBucket(nc, cfg), nil
	}
	return WatchFile(ctx, path, cfg)
}
