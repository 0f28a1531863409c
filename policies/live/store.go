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
	kv       jetstream.KeyValue
	replicas int
	created  bool
	single   string // why a bucket OpenStore created has one replica
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
// need none of it.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	st := &Store{}
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
	if st.replicas == 0 {
		if status, err := kv.Status(ctx); err == nil {
			if bs, ok := status.(*jetstream.KeyValueBucketStatus); ok {
				st.replicas = bs.StreamInfo().Config.Replicas
			}
		}
	}
	return st, nil
}

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
