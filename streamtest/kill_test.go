package streamtest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestKillMidStream: issue 18. Mid-stream, each part of the path dies at
// once (SIGKILL for a process; the service closes its listener and every
// connection, as a crashed one's kernel would), with two streams open
// through the two agents: server-sent events through the caller's proxy,
// and a long download (1 GiB at 4 MB/s) through its bound port. Each
// side that survives sees each of its streams end with an error, never a
// clean end that would pass a cut stream off as complete, and never a
// hang:
//
//   - the client, each response body's read failing (for the events, a
//     chunked body cut before its last chunk; for the download, fewer
//     bytes than its Content-Length);
//   - the service, each handler returning (its request's context ended,
//     or its writes failing), so it stops writing to no one.
//
// A side cut off by the kill hears nothing more and the agents' idle
// timeout (--stream-idle 2s) ends its streams: within the idle timeout
// plus its check, every sixth of it; the bound is twice the idle
// timeout, for a loaded machine. The test process's goroutines then come
// back to their count before the streams.
func TestKillMidStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(*mesh, *service)
	}{
		{"caller's agent", func(m *mesh, _ *service) { m.caller.kill() }},
		{"callee's agent", func(m *mesh, _ *service) { m.callee.kill() }},
		{"service", func(_ *mesh, s *service) {
			s.Listener.Close()
			s.CloseClientConnections()
		}},
		{"broker", func(m *mesh, _ *service) { m.broker.kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t)
			m := startMesh(t, svc.URL)
			proxied, plain := m.viaProxy(t), plainClient(t)
			baseline := runtime.NumGoroutine()

			type end struct {
				stream string
				at     time.Time
				n      int64
				err    error
			}
			ends := make(chan end, 2)
			streams := []struct {
				name   string
				client *http.Client
				url    string
			}{
				{"events", proxied, "http://orders/events"},
				{"download", plain, fmt.Sprintf("http://%s/download?n=%d&rate=4000000", m.bind, 1<<30)},
			}
			var got [2]atomic.Int64
			var bodies []io.Closer
			for i, s := range streams {
				resp, err := s.client.Get(s.url)
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				bodies = append(bodies, resp.Body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", s.name, resp.StatusCode)
				}
				go func() {
					buf := make([]byte, 32<<10)
					for {
						n, err := resp.Body.Read(buf)
						got[i].Add(int64(n))
						if err != nil {
							ends <- end{s.name, time.Now(), got[i].Load(), err}
							return
						}
					}
				}()
			}
			defer func() {
				for _, b := range bodies {
					b.Close()
				}
			}()
			// Both streams flow: a few events, a few frames of download.
			waitFor(t, 10*time.Second, "both streams to flow", func() bool { return got[0].Load() > 40 && got[1].Load() > 256<<10 })

			killed := time.Now()
			tc.kill(m, svc)
			bound := 2 * idle
			for range streams {
				select {
				case e := <-ends:
					took := e.at.Sub(killed)
					t.Logf("client: the %s stream ended %v after the kill, after %d bytes: %v", e.stream, took.Round(time.Millisecond), e.n, e.err)
					if errors.Is(e.err, io.EOF) {
						t.Errorf("client: the %s stream ended cleanly (io.EOF) after %d bytes: a cut stream passed off as complete", e.stream, e.n)
					}
					if took > bound {
						t.Errorf("client: the %s stream ended %v after the kill, want within %v", e.stream, took, bound)
					}
				case <-time.After(bound + 5*time.Second):
					t.Fatalf("client: a stream still open %v after the kill", bound+5*time.Second)
				}
			}
			for range streams {
				select {
				case e := <-svc.ended:
					took := e.at.Sub(killed)
					t.Logf("service: the %s handler returned %v after the kill", e.path, took.Round(time.Millisecond))
					if took > bound {
						t.Errorf("service: the %s handler returned %v after the kill, want within %v", e.path, took, bound)
					}
				case <-time.After(bound + 5*time.Second):
					t.Fatalf("service: a handler still writing %v after the kill", bound+5*time.Second)
				}
			}

			for _, b := range bodies {
				b.Close()
			}
			proxied.Transport.(*http.Transport).CloseIdleConnections()
			plain.Transport.(*http.Transport).CloseIdleConnections()
			var now int
			if !poll(5*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= baseline }) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines 5s after the streams ended, %d before them:\n%s", now, baseline, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// poll reports whether cond became true within d, checking every 10 ms.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitFor fails the test if cond does not become true within d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("no %s within %v", what, d)
	}
}
