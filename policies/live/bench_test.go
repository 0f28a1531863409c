package live_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
)

// BenchmarkPropagation measures how long an applied change takes to reach
// every one of 2,000 Sources (agents) in one process with one embedded
// broker, and what it costs. Run it with a fixed count, as each run
// starts 2,000 watchers first:
//
//	go test -run '^$' -bench Propagation -benchtime 20x ./policies/live/
//
// Two ways for the agents to watch:
//
//   - conn-per-agent: each agent has its own connection and its own watch
//     of the bucket (a subscription to its writes and a direct get of each
//     version), and decodes each version itself: what 2,000 agent
//     processes do, except that here they share the benchmark's CPUs with
//     each other and with the broker.
//   - shared-watch: the agents share one connection and one watch, each
//     with its own Source following it (Source.Follow): in-process agents
//     of one program.
//
// Each iteration applies one new version; the metrics are the p50, p99
// and max over every delivery of every iteration of the time from the
// write to the agent's Source holding the version (each agent's OnChange,
// called once Current returns it), the mean time until the last agent
// has it, the process's CPU time per change, and the requests for the
// current version (direct gets) the watches made per change. After each
// iteration
// every agent's Current is checked to be the new version.
func BenchmarkPropagation(b *testing.B) {
	b.Run("conn-per-agent", func(b *testing.B) { benchPropagation(b, 2000, false) })
	b.Run("shared-watch", func(b *testing.B) { benchPropagation(b, 2000, true) })
}

func benchPropagation(b *testing.B, agents int, shared bool) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nc, err := br.InProcessConn()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	store, err := live.OpenStore(ctx, js)
	if err != nil {
		b.Fatal(err)
	}
	version := func(i int) *policies.File {
		f, err := policies.Parse("mesh.yaml", fmt.Appendf(nil, "version: 1\nservices:\n  orders:\n    policy: { timeout: %dms }\n", i+1))
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	rev, err := store.Apply(ctx, version(0))
	if err != nil {
		b.Fatal(err)
	}

	var (
		want    atomic.Uint64 // the revision being applied
		start   atomic.Int64  // when its write began, in UnixNano
		arrived atomic.Int64  // agents that have it
		all     = make(chan struct{}, 1)
		delays  = make([]time.Duration, 0, agents*b.N)
		slots   = make([]time.Duration, agents)
	)
	onChange := func(slot int) func(*policies.File, uint64) {
		return func(_ *policies.File, rev uint64) {
			if rev != want.Load() {
				return // the initial version
			}
			slots[slot] = time.Duration(time.Now().UnixNano() - start.Load())
			if arrived.Add(1) == int64(agents) {
				all <- struct{}{}
			}
		}
	}
	srcs := make([]*live.Source, agents)
	if shared {
		w, err := live.WatchKV(ctx, nc, live.SourceConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		for i := range srcs {
			srcs[i] = w.Follow(live.SourceConfig{OnChange: onChange(i)})
		}
	} else {
		for i := range srcs {
			c, err := br.InProcessConn()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if srcs[i], err = live.WatchKV(ctx, c, live.SourceConfig{OnChange: onChange(i)}); err != nil {
				b.Fatalf("agent %d: %v", i, err)
			}
		}
	}
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()

	var lastTotal time.Duration
	cpu0, gets0 := cpuTime(), live.Fetches()
	b.ResetTimer()
	for i := range b.N {
		data, err := version(i + 1).JSON()
		if err != nil {
			b.Fatal(err)
		}
		arrived.Store(0)
		want.Store(rev + 1) // the only writer: the next revision is known
		t0 := time.Now()
		start.Store(t0.UnixNano())
		if rev, err = store.KV().Update(ctx, live.Key, data, rev); err != nil {
			b.Fatal(err)
		}
		select {
		case <-all:
		case <-time.After(time.Minute):
			b.Fatalf("after 1m, %d of %d agents have revision %d", arrived.Load(), agents, rev)
		}
		lastTotal += time.Since(t0)
		b.StopTimer()
		wantTimeout := time.Duration(i+2) * time.Millisecond
		for k, s := range srcs {
			if f, r := s.Current(); r != rev || f.Policy("orders", "").Timeout.D() != wantTimeout {
				b.Fatalf("agent %d holds revision %d, want %d with timeout %v", k, r, rev, wantTimeout)
			}
		}
		delays = append(delays, slots...)
		b.StartTimer()
	}
	b.StopTimer()
	cpu, gets := cpuTime()-cpu0, live.Fetches()-gets0
	slices.Sort(delays)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	at := func(q float64) float64 { return ms(delays[min(len(delays)-1, int(q*float64(len(delays))))]) }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(ms(delays[len(delays)-1]), "max-ms")
	b.ReportMetric(ms(lastTotal/time.Duration(b.N)), "all-ms/change")
	b.ReportMetric(ms(cpu/time.Duration(b.N)), "cpu-ms/change")
	b.ReportMetric(float64(gets)/float64(b.N), "gets/change")
}
