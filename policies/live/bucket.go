package live

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucketRetry is how often WatchBucket tries to open a bucket that
// is not there yet.
const DefaultBucketRetry = 2 * time.Second

// WatchBucket watches the mesh file in the Bucket over js as [WatchKV]
// does, without needing the bucket to exist: it returns at once, and until
// the bucket and a good version in it appear, Current returns nil (the
// built-in policy applies). It tries to open the bucket every cfg.Interval
// (default DefaultBucketRetry) until it is there (`natsmesh policy apply`
// creates it) or Close, quietly: one log line at info level says that the
// built-in policy applies meanwhile. Without JetStream on the server it
// keeps trying the same way, in case JetStream is enabled later.
func WatchBucket(js jetstream.JetStream, cfg SourceConfig) *Source {
	s := newSource(cfg)
	retry := cfg.Interval
	if retry <= 0 {
		retry = DefaultBucketRetry
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cleanup = cancel
	go func() {
		defer close(s.done)
		go func() {
			<-s.stop
			cancel()
		}()
		logged := false
		for {
			kv, err := js.KeyValue(ctx, Bucket)
			if err == nil {
				s.followKV(ctx, kv)
				return
			}
			if ctx.Err() != nil {
				return
			}
			if !logged {
				logged = true
				msg := "live: no mesh file bucket yet; the built-in policy applies until one is applied"
				if !errors.Is(err, jetstream.ErrBucketNotFound) {
					msg = "live: cannot open the mesh file bucket; the built-in policy applies meanwhile"
				}
				s.log.Info(msg, "bucket", Bucket, "err", err, "retry", retry)
			}
			t := time.NewTimer(retry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}()
	return s
}

// followKV watches kv's Key until ctx ends, as WatchKV does after its
// first load.
func (s *Source) followKV(ctx context.Context, kv jetstream.KeyValue) {
	w, err := kv.Watch(ctx, Key)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("live: cannot watch the mesh file bucket; keeping the built-in policy", "bucket", kv.Bucket(), "err", err)
		}
		return
	}
	defer w.Stop()
	var latest uint64
	initial := true
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // all initial values delivered
				if initial && latest > 0 && s.keptRev() == 0 {
					s.fromHistory(ctx, kv, latest)
				}
				initial = false
				continue
			}
			latest = e.Revision()
			s.entry(e)
		case <-ctx.Done():
			return
		}
	}
}

// Off is the path for [Watch] that means no mesh file: the built-in policy.
const Off = "off"

// Watch returns the Source a component (an agent, the gateway) runs with,
// by path: a local mesh file, watched with [WatchFile]; "" for the Bucket
// over nc, watched with [WatchBucket] (the default: the bucket need not
// exist yet); Off for none, a nil Source (the built-in policy). ctx bounds
// the first load of a file only.
func Watch(ctx context.Context, nc *nats.Conn, path string, cfg SourceConfig) (*Source, error) {
	switch path {
	case Off:
		return nil, nil
	case "":
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("live: %w", err)
		}
		return WatchBucket(js, cfg), nil
	}
	return WatchFile(ctx, path, cfg)
}
