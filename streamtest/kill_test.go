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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// TestKillMidStream: issue 18. Mid-stream, each part of the path dies at
// once (SIGKILL for a process; the service closes its listener and every
// connection, as a crashed one's kernel would; the gRPC server stops),
// with five streams open through the agents, each way and from each of
// the caller's entry points: server-sent events through the caller's
// proxy, a long download (1 GiB at 4 MB/s) through its bound port, a
// long upload (as long, as slow) with its Content-Length through the
// proxy and a chunked one through the bound port, all to orders; and a
// gRPC server stream through the caller's gRPC proxy to ledger, a gRPC
// service behind a third agent ("the callee's agent" kills both callees'
// agents). Each side that survives sees each of its streams end with an
// error, never a clean end that would pass a cut stream off as complete,
// and never a hang:
//
//   - the client, each response body's read failing (for the events, a
//     chunked body cut before its last chunk; for the download, fewer
//     bytes than its Content-Length), each upload failing or answered
//     with a mesh error, never 200, the gRPC stream ending with a status
//     other than OK;
//   - the service, each handler returning (its request's context ended,
//     or its writes failing), so it stops writing to no one, and each
//     upload's body read failing: a cut upload never reads as a whole
//     (shorter) body.
//
// A side cut off by the kill hears nothing more and the agents' idle
// timeout (--stream-idle 2s) ends its streams: within the idle timeout
// plus its check, every sixth of it; the bound is twice the idle
// timeout, for a loaded machine. The test process's goroutines then come
// back to their count before the streams.
func TestKillMidStream(t *testing.T) {
	type services struct {
		http *service
		grpc *grpc.Server
	}
	for _, tc := range []struct {
		name string
		kill func(*mesh, services)
	}{
		{"caller's agent", func(m *mesh, _ services) { m.caller.kill() }},
		{"callee's agent", func(m *mesh, _ services) {
			m.callee.kill()
			m.grpcCallee.kill()
		}},
		{"service", func(_ *mesh, s services) {
			s.http.Listener.Close()
			s.http.CloseClientConnections()
			s.grpc.Stop() // closes its listener and connections
		}},
		{"broker", func(m *mesh, _ services) { m.broker.kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t)
			grpcSrv, grpcAddr := serveGRPC(t, &grpcService{ended: svc.ended})
			m := startMesh(t, meshConfig{upstream: svc.URL, grpcUpstream: grpcAddr, idle: idle})
			proxied, plain := m.viaProxy(t), plainClient(t)
			cc, err := grpc.NewClient("passthrough:///"+m.grpcProxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("ledger"))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			baseline := runtime.NumGoroutine()

			type end struct {
				stream string
				at     time.Time
				n      int64
				err    error
			}
			ends := make(chan end, 5)
			const size = 1 << 30
			streams := []struct {
				name   string
				client *http.Client
				method string
				url    string
				// sized: an upload with its Content-Length; otherwise
				// chunked.
				sized bool
			}{
				{"events", proxied, "GET", "http://orders/events", false},
				{"download", plain, "GET", fmt.Sprintf("http://%s/download?n=%d&rate=4000000", m.bind, size), false},
				{"upload", proxied, "POST", "http://orders/upload", true},
				{"chunked upload", plain, "POST", "http://" + m.bind + "/upload", false},
			}
			// moved counts each stream's bytes: those its client received,
			// or, of an upload, sent; the last, of the gRPC stream.
			var moved [5]atomic.Int64
			for i, s := range streams {
				var body io.Reader
				if s.method == "POST" {
					body = &counting{r: &paced{r: newBody(size), rate: 4_000_000, start: time.Now()}, n: &moved[i]}
				}
				req, err := http.NewRequestWithContext(t.Context(), s.method, s.url, body)
				if err != nil {
					t.Fatal(err)
				}
				if s.sized {
					req.ContentLength = size
				}
				go func() {
					resp, err := s.client.Do(req)
					if err == nil {
						defer resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
							err = fmt.Errorf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Mesh-Error"), b)
						} else {
							_, err = io.CopyBuffer(io.Discard, &counting{r: resp.Body, n: &moved[i]}, make([]byte, 32<<10))
						}
					}
					if err == nil && s.method == "POST" {
						err = errors.New("the service answered 200 to an upload cut short")
					} else if err == nil {
						err = io.EOF // a clean end
					}
					ends <- end{s.name, time.Now(), moved[i].Load(), err}
				}()
			}
			// A gRPC server stream through web's gRPC proxy to ledger.
			stream, err := testpb.NewTestServiceClient(cc).StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					msg, err := stream.Recv()
					if err != nil {
						ends <- end{"grpc", time.Now(), moved[4].Load(), err}
						return
					}
					moved[4].Add(int64(len(msg.GetPayload().GetBody())))
				}
			}()
			// Every stream flows: a few events, a few frames of each body,
			// a few gRPC messages.
			waitFor(t, 10*time.Second, "every stream to flow", func() bool {
				return moved[0].Load() > 40 && moved[1].Load() > 256<<10 && moved[2].Load() > 256<<10 && moved[3].Load() > 256<<10 &&
					moved[4].Load() >= 3<<10
			})
			nStreams := len(streams) + 1

			killed := time.Now()
			tc.kill(m, services{svc, grpcSrv})
			bound := 2 * idle
			for range nStreams {
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
			for range nStreams {
				select {
				case e := <-svc.ended:
					took := e.at.Sub(killed)
					if e.path == "/upload" {
						t.Logf("service: an upload's body ended %v after the kill, after %d bytes: %v", took.Round(time.Millisecond), e.n, e.err)
						if e.err == nil {
							t.Errorf("service: an upload cut after %d bytes read as a whole body (a clean EOF)", e.n)
						}
					} else {
						t.Logf("service: the %s handler returned %v after the kill", e.path, took.Round(time.Millisecond))
					}
					if took > bound {
						t.Errorf("service: the %s handler returned %v after the kill, want within %v", e.path, took, bound)
					}
				case <-time.After(bound + 5*time.Second):
					t.Fatalf("service: a handler still writing %v after the kill", bound+5*time.Second)
				}
			}

			cc.Close()
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

// counting reads r, adding the bytes read to n.
type counting struct {
	r io.Reader
	n *atomic.Int64
}

func (c *counting) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}
