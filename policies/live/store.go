package live

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natsmesh/natsmesh/policies"
)

// Bucket is the JetStream KV bucket that holds the live mesh file.
const Bucket = "natsmesh-policies"

// Key is the bucket's key for the mesh file. The whole file is one value,
// so one revision is one consistent file and a watcher never sees half an
// apply.
const Key = "mesh"

// ErrNotFound is returned by Store.Get when no mesh file was applied yet.
var ErrNotFound = errors.New("live: no mesh file applied")

// Store keeps the live mesh file in the Bucket, as canonical JSON under Key.
//
// The bucket's writes are only durable if the server fsyncs every write:
// JetStream has no per-stream setting for that, so the server must run
// with "sync_interval: always" (the embedded broker does by default; see
// docs/decisions.md). Create one with OpenStore.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore opens the Bucket, creating it (file storage, 16 revisions of
// history, replicas 1) if it does not exist.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      Bucket,
			Description: "natsmesh: the live mesh file (natsmesh policy apply)",
			History:     16,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, Bucket) // created meanwhile by another
		}
	}
	if err != nil {
		return nil, fmt.Errorf("live: open bucket %s: %w", Bucket, err)
	}
	if err := raiseConsumerLimit(ctx, js); err != nil {
		return nil, err
	}
	return &Store{kv: kv}, nil
}

// MaxWatchers is the number of watchers (agents) the bucket admits.
//
// Every watcher is a JetStream consumer of the bucket's stream, and
// nats-server (2.11 and later) caps a stream that sets no limit of its own
// at 1,000 consumers (JSDefaultMaxConsumersPerStream): the 1,001st agent
// would fail to start. A KV bucket's config cannot set the limit, so
// OpenStore sets it on the stream.
const MaxWatchers = 100_000

func raiseConsumerLimit(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		return fmt.Errorf("live: open bucket %s: %w", Bucket, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxConsumers >= MaxWatchers {
		return nil
	}
	cfg.MaxConsumers = MaxWatchers
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("live: bucket %s: raise its consumer limit to %d: %w", Bucket, MaxWatchers, err)
	}
	return nil
}

// KV returns the bucket, for WatchKV.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Apply stores f as the live mesh file and returns its revision. Every
// watcher of the bucket gets it.
func (s *Store) Apply(ctx context.Context, f *policies.File) (uint64, error) {
	data, err := encode(f)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Put(ctx, Key, data)
	if err != nil {
		return 0, fmt.Errorf("live: apply: %w", err)
	}
	return rev, nil
}

// ApplyIf stores f only if the live file is still at revision (0: only if
// none was applied yet), so that a change reviewed with Diff is the change
// applied. A conflict returns an error matching jetstream.ErrKeyExists.
func (s *Store) ApplyIf(ctx context.Context, f *policies.File, revision uint64) (uint64, error) {
	data, err := encode(f)
	if err != nil {
		return 0, err
	}
	var rev uint64
	if revision == 0 {
		rev, err = s.kv.Create(ctx, Key, data)
	} else {
		rev, err = s.kv.Update(ctx, Key, data, revision)
	}
	if err != nil {
		return 0, fmt.Errorf("live: apply over revision %d: %w", revision, err)
	}
	return rev, nil
}

// encode renders f as stored, and checks that it parses back: a File
// built in code, not by Parse, might not be valid.
func encode(f *policies.File) ([]byte, error) {
	if f == nil {
		return nil, errors.New("live: apply: nil file")
	}
	data, err := f.JSON()
	if err != nil {
		return nil, err
	}
	if _, err := policies.ParseStored(Bucket+"/"+Key, data); err != nil {
		return nil, err
	}
	return data, nil
}

// Get returns the live mesh file and its revision, or ErrNotFound.
func (s *Store) Get(ctx context.Context) (*policies.File, uint64, error) {
	e, err := s.kv.Get(ctx, Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("live: get: %w", err)
	}
	f, err := policies.ParseStored(entryName(e.Revision()), e.Value())
	if err != nil {
		return nil, e.Revision(), err
	}
	return f, e.Revision(), nil
}

// entryName names a revision of the bucket's file in errors and logs.
// It is made for every version each watcher gets, so without fmt.
func entryName(rev uint64) string { return Bucket + "/" + Key + "@" + strconv.FormatUint(rev, 10) }
