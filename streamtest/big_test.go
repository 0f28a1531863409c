package streamtest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// bigSize is the size of TestGigabyteThroughAgents's transfers: 1 GiB
// with NATSMESH_BIG=1 (`make bench` sets it), 256 MiB otherwise, so that
// `make test`, whose test process (service, client, digests) runs under
// the race detector beside every other package's tests, stays quick; the
// agents and the broker are the same either way. NATSMESH_BIG_SIZE, in
// bytes, overrides both.
func bigSize(t *testing.T) int64 {
	t.Helper()
	if v := os.Getenv("NATSMESH_BIG_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("NATSMESH_BIG_SIZE=%q: want a positive number of bytes", v)
		}
		return n
	}
	if os.Getenv("NATSMESH_BIG") == "1" {
		return 1 << 30
	}
	return 256 << 20
}

// TestGigabyteThroughAgents: issue 18. A 1 GB upload and a 1 GB download
// (see bigSize) through two agents, each from the caller's HTTP proxy and
// from its port bound to the service: client -> web's agent -> broker ->
// orders's agent -> a real HTTP server. The bytes are checked by SHA-256
// at the receiving end; each agent's peak RSS over the transfer stays
// under 64 MiB however large the body (the broker's max_payload is 1
// MiB: the body crosses in frames, flow controlled); the throughput is
// logged beside the same transfer made directly, never asserted.
func TestGigabyteThroughAgents(t *testing.T) {
	size := bigSize(t)
	svc := newService(t)
	m := startMesh(t, meshConfig{upstream: svc.URL})
	want, _, _ := digest(newBody(size))
	direct, proxied := plainClient(t), m.viaProxy(t)

	type transfer struct {
		entry  string
		base   string
		client *http.Client
	}
	entries := []transfer{
		{"direct", svc.URL, direct},
		{"proxy", "http://orders", proxied},
		{"bind", "http://" + m.bind, direct},
	}
	mbps := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	for _, dir := range []string{"download", "upload"} {
		var directRate float64
		for _, e := range entries {
			t.Run(dir+" "+e.entry, func(t *testing.T) {
				for _, p := range append(m.agents(), m.broker) {
					p.resetPeak()
				}
				start := time.Now()
				if dir == "download" {
					download(t, e.client, e.base, size, want)
				} else {
					upload(t, e.client, e.base, size, want)
				}
				took := time.Since(start)
				rate := mbps(took)
				if e.entry == "direct" {
					directRate = rate
					t.Logf("%d MiB %sed directly in %v: %.0f MB/s", size>>20, dir, took.Round(time.Millisecond), rate)
					return
				}
				msg := fmt.Sprintf("%d MiB %sed through the agents (%s) in %v: %.0f MB/s, %.2fx direct (%.0f MB/s); peak RSS",
					size>>20, dir, e.entry, took.Round(time.Millisecond), rate, rate/directRate, directRate)
				for _, p := range append(m.agents(), m.broker) {
					peak := p.peakRSS(t)
					msg += fmt.Sprintf(" %s %.1f MiB", p.name, float64(peak)/(1<<20))
					if p != m.broker && peak >= rssBound {
						t.Errorf("%s's peak RSS %.1f MiB over the %s, want under %d MiB", p.name, float64(peak)/(1<<20), dir, rssBound>>20)
					}
				}
				t.Log(msg)
			})
		}
	}
}

func download(t *testing.T, c *http.Client, base string, size int64, want string) {
	t.Helper()
	resp, err := c.Get(fmt.Sprintf("%s/download?n=%d", base, size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		t.Fatalf("status %d, Content-Length %d (want %d): %s", resp.StatusCode, resp.ContentLength, size, b)
	}
	got, n, err := digest(resp.Body)
	if err != nil || n != size || got != want {
		t.Fatalf("got %d bytes, digest %s, %v; want %d bytes, digest %s", n, got, err, size, want)
	}
}

func upload(t *testing.T, c *http.Client, base string, size int64, want string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/upload", newBody(size))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != fmt.Sprintf("%s %d", want, size) {
		t.Fatalf("status %d, %q; want the service to have read %d bytes of digest %s", resp.StatusCode, got, size, want)
	}
}
