package census

import (
	"context"
	"encoding/json"

	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestCensusKeepsOnlyWhatItOffers (second review of decision 181): a
// census keeps, for MaxAge and until the next one of its service and
// subset, only what a pick may offer: the IDs of the addressable
// instances of its subset. It kept every answer whole, up to 4096 a
// census, whatever its size: a holder of the callee's key that answers
// each census with answers of another subset, each with a subset name
// near max_payload, made every caller keep up to 4096 MB per census of
// that service (one for each subset it calls), past MaxAge, until it
// next took one. Here 48 answers of 900 KB and one that fits: about 43 MB kept.
func TestCensusKeepsOnlyWhatItOffers(t *testing.T) {
	b := meshtest.Broker(t)
	rogue := meshtest.Conn(t, b)
	const answers, size = 48, 900 << 10
	big, _ := json.Marshal(Answer{ID: "Rogue", Subset: strings.Repeat("x", size), Addressable: true})
	if _, err := rogue.Subscribe(Subject("orders", "*"), func(m *nats.Msg) {
		for range answers {
			rogue.Publish(m.Reply, big)
		}
		// Last, one that fits: the census ends a moment after it, once
		// the others have been read.
		b, _ := json.Marshal(Answer{ID: "Live", Subset: "v1", Addressable: true})
		rogue.Publish(m.Reply, b)
	}); err != nil {
		t.Fatal(err)
	}
	if err := rogue.Flush(); err != nil {
		t.Fatal(err)
	}
	nc := meshtest.Conn(t, b)
	mux := caller(t, nc, "web")
	c := &Census{MaxAge: time.Hour, Wait: 10 * time.Second}

	before := heap()
	if id, ok := c.Pick(context.Background(), mux, nc, "orders", "v1"); id != "Live" || !ok {
		t.Fatalf("Pick = %q %v, want Live", id, ok)
	}
	// The answers still queued on the caller's connection (slow under
	// -race) are garbage once delivered: poll.
	var kept int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		if kept = heap() - before; kept <= 8<<20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.KeepAlive(c)
	t.Logf("the census of orders v1 keeps %d MB", kept>>20)
	if kept > 8<<20 {
		t.Errorf("a census that offers one ID keeps %d MB (%d answers of %d KB of another subset)", kept>>20, answers, size>>10)
	}
}

// heap is the live heap after a collection.
func heap() int64 {
	runtime.GC()
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return int64(s.HeapAlloc)
}
