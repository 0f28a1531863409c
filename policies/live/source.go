package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsmesh/natsmesh/policies"
)

// DefaultInterval is how often WatchFile checks its file.
const DefaultInterval = 500 * time.Millisecond

// SourceConfig configures WatchBucket, WatchKV and WatchFile. The zero
// value works.
type SourceConfig struct {
	// Logger gets an Info line for each mesh file applied and a Warn line
	// for each one refused (it does not parse), for a store that holds
	// none while a file is held, and for a store that cannot be reached.
	// Default: discard.
	Logger *slog.Logger
	// OnChange, if set, is called with each new good version once Current
	// returns it, in the order they are applied, one call at a time. It
	// must not block for long, as it holds up the next version (and the
	// Sources that follow this one, see Follow). It must not Close its own
	// Source nor the one that Source follows; it may Close other followers
	// and Follow anew.
	OnChange func(f *policies.File, revision uint64)
	// Interval is how often WatchFile checks the file's size and
	// modification time. Default DefaultInterval. A bucket's watch ignores
	// it (see Poll).
	Interval time.Duration

	// Poll is how often a bucket's watch (WatchBucket, WatchKV) asks the
	// store for the current version although it heard of no change: core
	// NATS delivers a change at most once, and this is the bound on how
	// long a lost one goes unnoticed. Default DefaultPoll.
	Poll time.Duration
	// FetchTimeout bounds each request for the current version, and so the
	// start's wait for a store that cannot be reached before Cache is
	// used. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Cache, if set, is the file a bucket's watch keeps the last good mesh
	// file in: each version applied from the store is written there
	// (atomically, mode 0600, the directory created 0700 if missing and
	// synced), with the mesh it came from: whom the connection
	// authenticates as (public parts: an NKey or a creds file's user
	// public key, a user name, a token's or client certificate's
	// fingerprint) and the servers it was given, and the bucket's
	// generation. At start, when the store cannot give a file (it does
	// not answer within FetchTimeout, has no bucket or no JetStream, or
	// holds only one that does not parse), the file kept there is applied
	// until the store's own version is fetched, if it was kept with the
	// same credentials (without any: from the same servers), of the
	// store's generation when its answer names one, and if this user owns
	// it and its group and others may not write it; else it is refused,
	// with a Warn line saying why. A store that answers and holds no file
	// is the truth: the kept file is not used then. Default: none.
	Cache string
}

// Source holds the current mesh file, kept up to date from the store
// (WatchBucket, WatchKV) or a local file (WatchFile). Current is a single
// atomic load, for the hot path. A version that does not parse is logged
// and refused, and the last good one stays current.
type Source struct {
	cur      atomic.Pointer[snapshot]
	log      *slog.Logger
	onChange func(*policies.File, uint64)

	// deliver serializes set: storing cur and calling onChange, and
	// closed, which Close sets once no call of onChange is under way. A
	// snapshot of a generation no newer than cur's is dropped, so a
	// follower that gets its first version from Follow and the next from
	// its leader's goroutine gets them in order, once each.
	deliver sync.Mutex
	closed  bool
	// mu guards followers only; set copies them under it and calls them
	// without it, so a follower's OnChange may Follow or Close others.
	mu        sync.Mutex
	followers map[*Source]struct{}

	stop      chan struct{}
	done      chan struct{}
	loaded    chan struct{} // closed by the first load, see Loaded
	closeOnce sync.Once
	cleanup   func()
}

// snapshot is one applied version. rev is the store's revision (it starts
// again from 1 when the bucket is made anew, so it orders versions of one
// generation of the bucket only); gen counts the versions the watching
// Source applied, which its followers share, and orders them.
type snapshot struct {
	file   *policies.File
	rev    uint64
	digest [sha256.Size]byte
	gen    uint64
}

// Current returns the current file and its revision, or nil and 0 while
// there is none (an empty store). The file must not be modified.
func (s *Source) Current() (*policies.File, uint64) {
	if c := s.cur.Load(); c != nil {
		return c.file, c.rev
	}
	return nil, 0
}

// Digest returns the SHA-256 of the current version as it was stored (the
// store's bytes, or the local file's), in hex, or "" while there is none.
// Two agents with the same digest apply the same file.
func (s *Source) Digest() string {
	if c := s.cur.Load(); c != nil {
		return hex.EncodeToString(c.digest[:])
	}
	return ""
}

// Close stops watching and waits until OnChange is no longer called; it is
// not called after Close returns. It is safe to call more than once.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		if s.cleanup != nil {
			s.cleanup()
		}
		s.deliver.Lock()
		s.closed = true
		s.deliver.Unlock()
	})
	return nil
}

func newSource(cfg SourceConfig) *Source {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{log: log, onChange: cfg.OnChange, stop: make(chan struct{}), done: make(chan struct{}), loaded: make(chan struct{})}
}

// Loaded returns a channel closed once s has done its first load: at once
// for WatchFile (which loads before it returns), Static and a follower;
// for a bucket's watch, once the store first answered (a file, a bad one,
// none, no bucket), or, while it does not answer, once a file is held
// (SourceConfig.Cache). A component may wait on it, briefly, before it
// serves, so that its first calls find the file.
func (s *Source) Loaded() <-chan struct{} { return s.loaded }

// apply makes f (at rev, stored as bytes with digest d) current as the
// next generation; only the one goroutine that watches s calls it.
func (s *Source) apply(f *policies.File, rev uint64, d [sha256.Size]byte) {
	var gen uint64 = 1
	if c := s.cur.Load(); c != nil {
		gen = c.gen + 1
	}
	s.set(&snapshot{file: f, rev: rev, digest: d, gen: gen})
}

// set makes c current, calls OnChange and then each follower, unless s
// is closed or already holds c's generation or a newer one.
func (s *Source) set(c *snapshot) {
	s.deliver.Lock()
	if old := s.cur.Load(); s.closed || old != nil && old.gen >= c.gen {
		s.deliver.Unlock()
		return
	}
	s.cur.Store(c)
	if s.onChange != nil {
		s.onChange(c.file, c.rev)
	}
	s.deliver.Unlock()
	s.mu.Lock()
	followers := make([]*Source, 0, len(s.followers))
	for fl := range s.followers {
		followers = append(followers, fl)
	}
	s.mu.Unlock()
	for _, fl := range followers {
		fl.set(c) // a no-op for one closed since the copy
	}
}

// Follow returns a new Source that holds what s holds, now and whenever s
// changes, with its own OnChange (cfg's; its other fields are not used)
// and its own Close, which stops only the follower. The agents of one
// process can so share one watch: one subscription to the store, and one
// decode of each version, however many Sources follow it. s calls the
// followers' OnChange in turn, from its own goroutine, so one that blocks
// holds up the rest; the follower's OnChange gets the current version, if
// any, before Follow returns (and may get a newer one from s's goroutine
// meanwhile). An OnChange may Follow s or Close another follower; it must
// not Close its own Source or s. A follower of a closed s keeps the last
// version; so does a closed follower.
func (s *Source) Follow(cfg SourceConfig) *Source {
	fl := newSource(SourceConfig{OnChange: cfg.OnChange})
	close(fl.done)
	close(fl.loaded)
	fl.cleanup = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.followers, fl)
	}
	s.mu.Lock()
	if s.followers == nil {
		s.followers = map[*Source]struct{}{}
	}
	s.followers[fl] = struct{}{}
	// Read after registering: a version s stores later reaches fl
	// through s's set, one stored earlier through c.
	c := s.cur.Load()
	s.mu.Unlock()
	if c != nil {
		fl.set(c)
	}
	return fl
}

func (s *Source) keptRev() uint64 {
	_, rev := s.Current()
	return rev
}

// WatchFile loads the mesh file at path and reloads it whenever its size,
// modification time and content change, checking every cfg.Interval, until
// Close. The revision counts good loads from 1. The first load must
// succeed (its error is returned); later bad versions are logged and the
// last good one kept. ctx bounds the first load only.
func WatchFile(ctx context.Context, path string, cfg SourceConfig) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	s := newSource(cfg)
	interval := cfg.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	fw := &fileWatch{path: path, src: s}
	if err := fw.check(); err != nil {
		return nil, err
	}
	close(s.loaded)
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := fw.check(); err != nil && err.Error() != fw.lastErr {
					// Log each distinct problem once, not every interval.
					fw.lastErr = err.Error()
					s.log.Warn("live: refused the mesh file; keeping the last good one",
						"file", path, "digest", shortDigest(fw.refused), "kept", s.keptRev(), "err", err)
				}
			case <-s.stop:
				return
			}
		}
	}()
	return s, nil
}

// fileWatch is the state of one WatchFile loop.
type fileWatch struct {
	path    string
	src     *Source
	size    int64
	mtime   time.Time
	sum     [sha256.Size]byte
	rev     uint64
	lastErr string
	refused [sha256.Size]byte // of the last version that did not parse
}

// check reloads the file if it changed since the last check.
func (w *fileWatch) check() error {
	fi, err := os.Stat(w.path)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	if w.rev > 0 && fi.Size() == w.size && fi.ModTime().Equal(w.mtime) {
		return nil
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	// Remember what was seen even if it does not parse, so that a bad
	// version is reported once and not re-read every interval.
	w.size, w.mtime = fi.Size(), fi.ModTime()
	sum := sha256.Sum256(data)
	if w.rev > 0 && bytes.Equal(sum[:], w.sum[:]) {
		return nil // touched, not changed
	}
	f, err := policies.Parse(filepath.Base(w.path), data)
	if err != nil {
		w.refused = sum
		return err
	}
	w.sum, w.lastErr = sum, ""
	w.rev++
	w.src.apply(f, w.rev, sum)
	w.src.log.Info("live: applied mesh file", "revision", w.rev, "digest", shortDigest(sum), "source", w.path)
	return nil
}

// Static returns a Source that holds f (revision 1) until Close and never
// changes: for a mesh file built into a program (the demo) or a test. A
// nil f gives a Source whose Current is nil.
func Static(f *policies.File) *Source {
	s := newSource(SourceConfig{})
	if f != nil {
		var d [sha256.Size]byte
		if data, err := f.JSON(); err == nil {
			d = sha256.Sum256(data)
		}
		s.cur.Store(&snapshot{file: f, rev: 1, gen: 1, digest: d})
	}
	close(s.done)
	close(s.loaded)
	return s
}
