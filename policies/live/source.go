package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natsmesh/natsmesh/policies"
)

// DefaultInterval is how often WatchFile checks its file.
const DefaultInterval = 500 * time.Millisecond

// SourceConfig configures WatchKV and WatchFile. The zero value works.
type SourceConfig struct {
	// Logger gets a warning for each version that is ignored because it
	// does not parse (or was deleted, or cannot be read). Default: discard.
	Logger *slog.Logger
	// OnChange, if set, is called with each new good version once Current
	// returns it, in revision order, one call at a time. It must not
	// block for long, as it holds up the next version (and the Sources
	// that follow this one, see Follow). It must not Close its own Source
	// nor the one that Source follows; it may Close other followers and
	// Follow anew.
	OnChange func(f *policies.File, revision uint64)
	// Interval is how often WatchFile checks the file's size and
	// modification time. Default DefaultInterval. WatchKV ignores it: the
	// bucket pushes changes.
	Interval time.Duration
}

// Source holds the current mesh file, kept up to date from a bucket
// (WatchKV) or a local file (WatchFile). Current is a single atomic load,
// for the hot path. A version that does not parse is logged and ignored,
// and the last good one stays current.
type Source struct {
	cur      atomic.Pointer[snapshot]
	log      *slog.Logger
	onChange func(*policies.File, uint64)

	// deliver serializes set: storing cur and calling onChange, and
	// closed, which Close sets once no call of onChange is under way. A
	// version no newer than cur is dropped, so a follower that gets its
	// first version from Follow and the next from its leader's goroutine
	// gets them in order, once each.
	deliver sync.Mutex
	closed  bool
	// mu guards followers only; set copies them under it and calls them
	// without it, so a follower's OnChange may Follow or Close others.
	mu        sync.Mutex
	followers map[*Source]struct{}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	cleanup   func()
}

type snapshot struct {
	file *policies.File
	rev  uint64
}

// Current returns the current file and its revision, or nil and 0 while
// there is none (an empty bucket). The file must not be modified.
func (s *Source) Current() (*policies.File, uint64) {
	if c := s.cur.Load(); c != nil {
		return c.file, c.rev
	}
	return nil, 0
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
	return &Source{log: log, onChange: cfg.OnChange, stop: make(chan struct{}), done: make(chan struct{})}
}

// set makes f (at rev) current, calls OnChange and then each follower,
// unless s is closed or already holds rev or a newer one.
func (s *Source) set(f *policies.File, rev uint64) {
	s.deliver.Lock()
	if c := s.cur.Load(); s.closed || c != nil && c.rev >= rev {
		s.deliver.Unlock()
		return
	}
	s.cur.Store(&snapshot{file: f, rev: rev})
	if s.onChange != nil {
		s.onChange(f, rev)
	}
	s.deliver.Unlock()
	s.mu.Lock()
	followers := make([]*Source, 0, len(s.followers))
	for fl := range s.followers {
		followers = append(followers, fl)
	}
	s.mu.Unlock()
	for _, fl := range followers {
		fl.set(f, rev) // a no-op for one closed since the copy
	}
}

// Follow returns a new Source that holds what s holds, now and whenever s
// changes, with its own OnChange (cfg's; its Logger and Interval are not
// used) and its own Close, which stops only the follower. The agents of
// one process can so share one watch: one consumer of the bucket, and one
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
		fl.set(c.file, c.rev)
	}
	return fl
}

func (s *Source) keptRev() uint64 {
	_, rev := s.Current()
	return rev
}

// WatchKV watches the mesh file in kv (the Bucket, see Store.KV). It
// returns once the current version, if any, is loaded, so Current is up to
// date from the start; ctx bounds that wait only. Watching goes on until
// Close, surviving reconnects. If the current version does not parse,
// Current stays nil until a good one arrives.
func WatchKV(ctx context.Context, kv jetstream.KeyValue, cfg SourceConfig) (*Source, error) {
	s := newSource(cfg)
	// The watcher lives until Close, not until ctx ends: nats.go ties its
	// subscription to the context it is created with.
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.Watch(wctx, Key)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("live: watch bucket %s: %w", kv.Bucket(), err)
	}
	s.cleanup = cancel
	fail := func(err error) (*Source, error) {
		w.Stop()
		cancel()
		return nil, err
	}
	var latest uint64
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return fail(fmt.Errorf("live: watch bucket %s: watcher closed", kv.Bucket()))
			case e == nil: // all initial values delivered
				loaded = true
			default:
				latest = e.Revision()
				s.entry(e)
			}
		case <-ctx.Done():
			return fail(fmt.Errorf("live: watch bucket %s: %w", kv.Bucket(), ctx.Err()))
		}
	}
	if latest > 0 && s.keptRev() == 0 {
		// The latest version is bad and this watcher never saw a good one:
		// start from the newest good version in the bucket's history, as
		// a watcher running all along would have kept it.
		s.fromHistory(ctx, kv, latest)
	}
	go func() {
		defer close(s.done)
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					s.entry(e)
				}
			case <-s.stop:
				return
			}
		}
	}()
	return s, nil
}

func (s *Source) fromHistory(ctx context.Context, kv jetstream.KeyValue, latest uint64) {
	hist, err := kv.History(ctx, Key)
	if err != nil {
		s.log.Warn("live: cannot read the bucket's history for a good mesh file", "err", err)
		return
	}
	for i := len(hist) - 1; i >= 0; i-- {
		e := hist[i]
		if e.Revision() >= latest || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		if f, err := policies.ParseStored(entryName(e.Revision()), e.Value()); err == nil {
			s.log.Warn("live: using an older mesh file, the latest does not parse", "revision", e.Revision(), "latest", latest)
			s.set(f, e.Revision())
			return
		}
	}
}

// TmpRecv is a temporary profiling hook.
var TmpRecv func(rev uint64)

func (s *Source) entry(e jetstream.KeyValueEntry) {
	rev := e.Revision()
	if TmpRecv != nil {
		TmpRecv(rev)
	}
	if rev <= s.keptRev() {
		return
	}
	if e.Operation() != jetstream.KeyValuePut {
		s.log.Warn("live: the mesh file was deleted from the bucket; keeping the last good one",
			"revision", rev, "kept", s.keptRev())
		return
	}
	f, err := policies.ParseStored(entryName(rev), e.Value())
	if err != nil {
		s.log.Warn("live: ignoring a mesh file that does not parse; keeping the last good one",
			"revision", rev, "kept", s.keptRev(), "err", err)
		return
	}
	s.set(f, rev)
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
					s.log.Warn("live: ignoring the mesh file; keeping the last good one",
						"file", path, "kept", s.keptRev(), "err", err)
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
		return err
	}
	w.sum, w.lastErr = sum, ""
	w.rev++
	w.src.set(f, w.rev)
	return nil
}

// Static returns a Source that holds f (revision 1) until Close and never
// changes: for a mesh file built into a program (the demo) or a test. A
// nil f gives a Source whose Current is nil.
func Static(f *policies.File) *Source {
	s := newSource(SourceConfig{})
	if f != nil {
		s.cur.Store(&snapshot{file: f, rev: 1})
	}
	close(s.done)
	return s
}
