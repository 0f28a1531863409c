package policies_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/policies"
)

// BenchmarkPropagation measures how long an applied change takes to reach
// every one of 2,000 watchers (each on its own in-process connection to
// one embedded broker, as 2,000 agents would be). Each iteration applies
// one file; the metrics are the p50 and max over all deliveries of all
// iterations, and the mean over iterations of the time until the last
// watcher has it.
func BenchmarkPropagation(b *testing.B) {
	const watchers = 2000
	br, err := broker.New(broker.Config{Listen: "127.0.0.1:-1", HTTP: broker.HTTPOff, StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Shutdown(context.Background())
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	if err := br.Ready(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nc, err := br.InProcessConn()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	store, err := policies.OpenStore(ctx, js)
	if err != nil {
		b.Fatal(err)
	}

	var (
		mu      sync.Mutex
		applied = map[uint64]time.Time{}
		delays  []time.Duration
		arrived = map[uint64]int{}
		all     = make(chan uint64, 16)
	)
	onChange := func(_ *policies.File, rev uint64) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if t0, ok := applied[rev]; ok {
			delays = append(delays, now.Sub(t0))
		}
		if arrived[rev]++; arrived[rev] == watchers {
			all <- rev
		}
	}
	for i := range watchers {
		c, err := br.InProcessConn()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		wjs, _ := jetstream.New(c)
		kv, err := wjs.KeyValue(ctx, policies.Bucket)
		if err != nil {
			b.Fatalf("watcher %d: %v", i, err)
		}
		src, err := policies.WatchKV(ctx, kv, policies.SourceConfig{OnChange: onChange})
		if err != nil {
			b.Fatalf("watcher %d: %v", i, err)
		}
		defer src.Close()
	}

	var lastTotal time.Duration
	b.ResetTimer()
	for i := range b.N {
		f, err := policies.Parse("mesh.yaml", fmt.Appendf(nil, "version: 1\nservices:\n  orders:\n    policy: { timeout: %dms }\n", i+1))
		if err != nil {
			b.Fatal(err)
		}
		// The revision is known only once Put returns, after delivery may
		// have begun: record the time before, under the lock, as the
		// next revision.
		mu.Lock()
		start := time.Now()
		data, _ := f.JSON()
		rev, err := store.KV().Put(ctx, policies.Key, data)
		if err != nil {
			mu.Unlock()
			b.Fatal(err)
		}
		applied[rev] = start
		mu.Unlock()
		select {
		case got := <-all:
			if got != rev {
				b.Fatalf("revision %d reached all watchers, want %d", got, rev)
			}
		case <-time.After(30 * time.Second):
			mu.Lock()
			n := arrived[rev]
			mu.Unlock()
			b.Fatalf("after 30s, %d of %d watchers have revision %d", n, watchers, rev)
		}
		lastTotal += time.Since(start)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(delays)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if len(delays) > 0 {
		b.ReportMetric(ms(delays[len(delays)/2]), "p50-ms")
		b.ReportMetric(ms(delays[len(delays)-1]), "max-ms")
	}
	b.ReportMetric(ms(lastTotal/time.Duration(b.N)), "all-ms/change")
	b.ReportMetric(watchers, "watchers")
}
