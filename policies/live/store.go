package live

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
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

// GenerationHeader is the header each version Store writes carries: the
// generation of the bucket it was written to, the time JetStream created
// the bucket's stream (RFC 3339, nanoseconds, UTC). A bucket deleted and
// made anew has another, and numbers its revisions from 1 again; within
// one generation revisions only grow, so a watch never applies a lower
// revision of the generation it holds (an answer from a replica that is
// behind), only a version of another generation (see WatchBucket).
const GenerationHeader = "Natsmesh-Generation"

// Store keeps the live mesh file in the Bucket, as canonical JSON under Key,
// each version with the bucket's generation (GenerationHeader).
//
// The bucket's writes are only durable if the server fsyncs every write:
// JetStream has no per-stream setting for that, so the server must run
// with "sync_interval: always" (the embedded broker does by default; see
// docs/decisions.md). Create one with OpenStore.
type Store struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	replicas int
	created  bool
	single   string // why a bucket OpenStore created has one replica
	gen      string // the bucket's generation, GenerationHeader
}

// Replicas is the number of replicas the bucket's stream keeps: how many
// servers of a JetStream cluster hold the mesh file.
const Replicas = 3

// OpenStore opens the Bucket, creating it if it does not exist: file
// storage, 16 revisions of history, direct get allowed (any replica
// answers the watchers' reads, see WatchBucket), and Replicas replicas, or
// one where the JetStream servers cannot place three (a single server, or
// a cluster of fewer than three): see Created and ReplicasNote. It needs
// the whole JetStream API of the bucket (the admin's rights); watchers
// need none of it. The Store writes every version with the generation of
// the bucket it opened (GenerationHeader): open it anew after the bucket
// was deleted.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	st := &Store{js: js}
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = st.create(ctx, js, Replicas)
		if err != nil && fewerServers(err) {
			st.single = err.Error()
			kv, err = st.create(ctx, js, 1)
		}
		if errors.Is(err, jetstream.ErrBucketExists) {
			st.created, st.single = false, ""
			kv, err = js.KeyValue(ctx, Bucket) // created meanwhile by another
		}
	}
	if err != nil {
		return nil, fmt.Errorf("live: open bucket %s: %w", Bucket, err)
	}
	st.kv = kv
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("live: open bucket %s: %w", Bucket, err)
	}
	bs, ok := status.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo().Created.IsZero() {
		return nil, fmt.Errorf("live: open bucket %s: JetStream does not say when its stream was created", Bucket)
	}
	st.gen = generation(bs.StreamInfo().Created)
	if st.replicas == 0 {
		st.replicas = bs.StreamInfo().Config.Replicas
	}
	return st, nil
}

// generation names the bucket whose stream JetStream created at created:
// the time as JetStream keeps it with the stream (the same on every
// replica, across restarts and leader changes), which a bucket made anew
// changes. It is only ever compared for equality, so clocks need not
// agree.
func generation(created time.Time) string { return created.UTC().Format(time.RFC3339Nano) }

// Generation returns the generation of the bucket s opened, which every
// version it writes carries (GenerationHeader).
func (s *Store) Generation() string { return s.gen }

func (s *Store) create(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "natsmesh: the live mesh file (natsmesh policy apply)",
		History:     16,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		// AllowDirect is on for every bucket jetstream.CreateKeyValue
		// makes: watchers read with direct get alone.
	})
	if err == nil {
		s.created, s.replicas = true, replicas
	}
	return kv, err
}

// fewerServers reports whether err is JetStream's refusal to place a
// stream's replicas: a server that is not clustered, or a cluster with
// too few servers (for JetStream) to hold them.
func fewerServers(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeReplicasNotSupported, errCodeClusterNoPeers, errCodeInsufficientResources:
		return true
	}
	return false
}

// JetStream's error codes for a stream whose replicas cannot be placed
// (nats-server's JSStreamReplicasNotSupportedErr, JSClusterNoPeersErrF and
// JSInsufficientResourcesErr, which jetstream names no constant for).
const (
	errCodeReplicasNotSupported  jetstream.ErrorCode = 10074
	errCodeClusterNoPeers        jetstream.ErrorCode = 10005
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// Created reports whether OpenStore created the bucket.
func (s *Store) Created() bool { return s.created }

// Replicas returns the number of replicas of the bucket's stream (0 if it
// could not be read).
func (s *Store) Replicas() int { return s.replicas }

// ReplicasNote says why a bucket OpenStore created has one replica rather
// than Replicas: JetStream's refusal of three. It is "" otherwise.
func (s *Store) ReplicasNote() string { return s.single }

// KV returns the bucket.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Apply stores f as the live mesh file and returns its revision. Every
// watcher of the bucket gets it.
func (s *Store) Apply(ctx context.Context, f *policies.File) (uint64, error) {
	data, err := encode(f)
	if err != nil {
		return 0, err
	}
	rev, err := s.put(ctx, data)
	if err != nil {
		return 0, fmt.Errorf("live: apply: %w", err)
	}
	return rev, nil
}

// put writes data as the next version of Key with the bucket's
// generation, as KeyValue.Put does with a header more; opts may expect
// the revision it replaces.
func (s *Store) put(ctx context.Context, data []byte, opts ...jetstream.PublishOpt) (uint64, error) {
	m := nats.NewMsg(WriteSubject)
	m.Header.Set(GenerationHeader, s.gen)
	m.Data = data
	ack, err := s.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// putOver writes data only if the last message of Key is at revision (0:
// none), as KeyValue.Update and Create do; a conflict matches
// jetstream.ErrKeyExists.
func (s *Store) putOver(ctx context.Context, data []byte, revision uint64) (uint64, error) {
	rev, err := s.put(ctx, data, jetstream.WithExpectLastSequencePerSubject(revision))
	if err == nil || !wrongLast(err) {
		return rev, err
	}
	if revision == 0 {
		// As KeyValue.Create: a key deleted or purged holds a marker,
		// which "none applied yet" replaces.
		st, serr := s.js.Stream(ctx, "KV_"+Bucket)
		if serr != nil {
			return 0, serr
		}
		last, gerr := st.GetLastMsgForSubject(ctx, WriteSubject)
		if gerr == nil && last.Header.Get(kvOperation) != "" {
			rev, err = s.put(ctx, data, jetstream.WithExpectLastSequencePerSubject(last.Sequence))
			if err == nil || !wrongLast(err) {
				return rev, err
			}
		}
	}
	return 0, fmt.Errorf("%w (%w)", jetstream.ErrKeyExists, err)
}

// kvOperation is the header of a KV delete or purge marker ("DEL",
// "PURGE"); a version of the file has none.
const kvOperation = "KV-Operation"

// wrongLast reports whether err is JetStream's refusal of a write that
// expected another last revision of its subject.
func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ApplyIf stores f only if the live file is still at revision (0: only if
// none was applied yet), so that a change reviewed with Diff is the change
// applied. A conflict returns an error matching jetstream.ErrKeyExists.
func (s *Store) ApplyIf(ctx context.Context, f *policies.File, revision uint64) (uint64, error) {
	data, err := encode(f)
	if err != nil {
		return 0, err
	}
	rev, err := s.putOver(ctx, data, revision)
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
