package streamtest

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestSlowReader: issue 18. A service that would write 1 GB as fast as
// it can, to a client reading at 1 MB/s through two agents, for 8 s: the
// service stays blocked in its writes a bounded distance ahead of what
// its client has read, and every agent's peak RSS stays under 64 MiB.
// Without flow control across the agents the service would have written
// its gigabyte into them in seconds.
//
// The distance is the stream's credit in each agent (1 MiB each, the
// default window) plus the kernel's socket buffers of the three TCP hops
// (service to its agent, agent to broker and back, agent to client), which
// loopback autotunes to a few MiB each: measured about 9 MiB; 16 MiB is
// the bound (a direct download, no agents, runs about 4 MiB ahead).
//
// The agents run with their default idle timeout (10 s), as natsmesh
// does: a callee's agent ends a stream whose caller granted no credit for
// that long (docs/wire.md, "Keep-alive"), and a reader behind socket
// buffers grants in bursts, as the kernel wakes its proxy's blocked write
// once a third of the send buffer (up to 4 MiB) has drained: at 1 MB/s,
// about every 1.4 s.
func TestSlowReader(t *testing.T) {
	const (
		total = 1 << 30
		rate  = 1_000_000 // bytes per second
		span  = 8 * time.Second
		bound = 16 << 20
	)
	svc := newService(t)
	m := startMesh(t, meshConfig{upstream: svc.URL})
	for _, p := range append(m.agents(), m.broker) {
		p.resetPeak()
	}
	resp, err := m.viaProxy(t).Get(fmt.Sprintf("http://orders/slow?n=%d", total))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != total {
		t.Fatalf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}

	// Read 16 KiB at a time, each when the rate allows it.
	buf := make([]byte, 16<<10)
	var read, worst int64
	start := time.Now()
	for time.Since(start) < span {
		n, err := io.ReadFull(resp.Body, buf)
		read += int64(n)
		if err != nil {
			t.Fatalf("after %d bytes: %v", read, err)
		}
		worst = max(worst, svc.written.Load()-read)
		time.Sleep(time.Until(start.Add(time.Duration(read) * time.Second / rate)))
	}
	took := time.Since(start)
	written := svc.written.Load()
	worst = max(worst, written-read)
	msg := fmt.Sprintf("in %v the client read %.1f MB (%.2f MB/s); the service wrote %.1f MB, at most %.1f MiB ahead of its client; peak RSS",
		took.Round(time.Millisecond), float64(read)/1e6, float64(read)/took.Seconds()/1e6, float64(written)/1e6, float64(worst)/(1<<20))
	for _, p := range append(m.agents(), m.broker) {
		peak := p.peakRSS(t)
		msg += fmt.Sprintf(" %s %.1f MiB", p.name, float64(peak)/(1<<20))
		if p != m.broker && peak >= rssBound {
			t.Errorf("%s's peak RSS %.1f MiB, want under %d MiB", p.name, float64(peak)/(1<<20), rssBound>>20)
		}
	}
	t.Log(msg)
	if worst > bound {
		t.Errorf("the service wrote up to %.1f MiB more than its client had read, want at most %d MiB: flow control does not hold it back",
			float64(worst)/(1<<20), bound>>20)
	}

	// The client leaves: the service's blocked write fails and its
	// handler returns.
	left := time.Now()
	resp.Body.Close()
	select {
	case e := <-svc.ended:
		t.Logf("the service's handler returned %v after its client left", e.at.Sub(left).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the service still writes 10s after its client left")
	}
}
