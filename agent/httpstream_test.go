package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// Issue 18, HTTP: bodies of any size, server-sent events, trailers and
// WebSocket through real agents over an in-process broker (max_payload 1
// MiB), from each HTTP entry point: the caller's sidecar proxy, a bind
// port, and the edge gateway.

// streamingService is a real HTTP service that streams: /upload hashes
// the body it gets, /download?n=N[&sized] writes N bytes, /events sends
// a server-sent event each time it is told on events (the time it sent
// it on sent) until its client goes (told on gone), /trailers echoes its
// body twice with a trailer, /ws echoes WebSocket messages.
type streamingService struct {
	events chan string
	sent   chan time.Time
	gone   chan struct{}
}

func (s *streamingService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/upload":
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprintf(w, "%x %d", h.Sum(nil), n)
	case "/download":
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Has("sized") {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		io.Copy(w, meshtest.Body(7, n))
	case "/events":
		defer func() { s.gone <- struct{}{} }()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-s.events:
				s.sent <- time.Now()
				fmt.Fprintf(w, "data: %s\n\n", ev)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case "/trailers":
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Req"))
		w.Write(body)
		w.(http.Flusher).Flush()
		w.Write(body)
		w.Header().Set("X-Sum", strconv.Itoa(2*len(body)))
	case "/duplex":
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(w, "echo "+line)
			w.(http.Flusher).Flush()
		}
	case "/ws":
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}
}

// streamEntry is one HTTP entry point into the mesh: how its client
// reaches the streaming service.
type streamEntry struct {
	name   string
	base   string // the service's URL through the entry point
	client *http.Client
}

// unaryTimeout is the default deadline of the callers' pipelines in these
// tests: short, so that a stream that outlives it shows it bounds only
// the head.
const unaryTimeout = 300 * time.Millisecond

// streamingMesh runs the streaming service behind an agent "orders", a
// caller agent "web" with its proxy and a port bound to orders, and a
// gateway routing every path to orders, each with the default deadline
// timeout (0: pipeline.DefaultTimeout).
func streamingMesh(t *testing.T, timeout time.Duration) (*streamingService, []streamEntry) {
	t.Helper()
	b := meshtest.Broker(t)
	svc := &streamingService{events: make(chan string), sent: make(chan time.Time, 100), gone: make(chan struct{}, 10)}
	up := httptest.NewServer(svc)
	t.Cleanup(up.Close)
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL})
	web := startAgent(t, b, Config{Service: "web", Timeout: timeout})
	proxy := listen(t, web.ServeHTTPProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })

	g, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:    meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes:  []bridge.Route{{PathPrefix: "/", Service: "orders"}},
		Timeout: timeout,
		Logger:  quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(gl, nil)
	t.Cleanup(func() { g.Shutdown(context.Background()) })

	pu, _ := url.Parse("http://" + proxy)
	viaProxy := &http.Transport{Proxy: http.ProxyURL(pu)}
	direct := &http.Transport{}
	t.Cleanup(viaProxy.CloseIdleConnections)
	t.Cleanup(direct.CloseIdleConnections)
	return svc, []streamEntry{
		{"proxy", "http://orders", &http.Client{Transport: viaProxy}},
		{"bind", "http://" + bind, &http.Client{Transport: direct}},
		{"gateway", "http://" + gl.Addr().String(), &http.Client{Transport: direct}},
	}
}

// TestHTTPStreamsThroughAgents: issue 18. Through two agents and from
// every HTTP entry point: uploads and downloads many times max_payload,
// of known and unknown length (64 MiB through the proxy, 8 MiB through
// the others), bytes checked by digest; a service that answers line by
// line as it reads (full duplex); trailers both ways. (The default
// deadline bounds the wait for the answer's head, which an upload's
// service sends once it has read the body: it is left at its 30 s.)
func TestHTTPStreamsThroughAgents(t *testing.T) {
	_, entries := streamingMesh(t, 0)
	for _, e := range entries {
		t.Run(e.name, func(t *testing.T) {
			size := int64(8 << 20)
			if e.name == "proxy" {
				size = 64 << 20
			}
			if testing.Short() {
				size = 3 << 20
			}
			want, _ := meshtest.Digest(t, meshtest.Body(7, size))
			for _, sized := range []bool{true, false} {
				t.Run(fmt.Sprintf("upload sized=%v", sized), func(t *testing.T) {
					body := meshtest.Body(7, size)
					if !sized {
						body = io.MultiReader(body)
					}
					r, _ := http.NewRequest("POST", e.base+"/upload", body)
					if sized {
						r.ContentLength = size
					}
					start := time.Now()
					resp, err := e.client.Do(r)
					if err != nil {
						t.Fatal(err)
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(got) != fmt.Sprintf("%s %d", want, size) {
						t.Fatalf("got %d %q, want digest %s of %d bytes", resp.StatusCode, got, want, size)
					}
					t.Logf("%d MiB up in %v", size>>20, time.Since(start))
				})
				t.Run(fmt.Sprintf("download sized=%v", sized), func(t *testing.T) {
					target := fmt.Sprintf("%s/download?n=%d", e.base, size)
					if sized {
						target += "&sized"
					}
					start := time.Now()
					resp, err := e.client.Get(target)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
					if sized && resp.ContentLength != size {
						t.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
					}
					if got, n := meshtest.Digest(t, resp.Body); got != want || n != size {
						t.Fatalf("got %d bytes, digest %s, want %d, %s", n, got, size, want)
					}
					t.Logf("%d MiB down in %v", size>>20, time.Since(start))
				})
			}
			t.Run("full duplex", func(t *testing.T) {
				pr, pw := io.Pipe()
				defer pw.Close()
				r, _ := http.NewRequest("POST", e.base+"/duplex", pr)
				resp, err := e.client.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				for i := range 20 {
					fmt.Fprintf(pw, "line %d\n", i)
					if got, err := br.ReadString('\n'); err != nil || got != fmt.Sprintf("echo line %d\n", i) {
						t.Fatalf("line %d: %q, %v", i, got, err)
					}
				}
			})
			t.Run("trailers", func(t *testing.T) {
				r, _ := http.NewRequest("POST", e.base+"/trailers", io.MultiReader(strings.NewReader("abc")))
				r.Trailer = http.Header{"X-Req": {"req-value"}}
				resp, err := e.client.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != "abcabc" {
					t.Fatalf("body %q, %v", body, err)
				}
				if resp.Header.Get("X-Req-Trailer") != "req-value" || resp.Trailer.Get("X-Sum") != "6" {
					t.Errorf("the service saw request trailer %q; answer trailers %v", resp.Header.Get("X-Req-Trailer"), resp.Trailer)
				}
			})
		})
	}
}

// TestSSEThroughAgents: issue 18. Server-sent events through two agents,
// from every HTTP entry point: each reaches the client within 50 ms of
// the service sending it, measured; the stream stays open past the
// callers' default deadline (300 ms here), events still arriving; the
// client's leaving ends the service's request.
func TestSSEThroughAgents(t *testing.T) {
	svc, entries := streamingMesh(t, unaryTimeout)
	for _, e := range entries {
		t.Run(e.name, func(t *testing.T) {
			resp, err := e.client.Get(e.base + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
			}
			br := bufio.NewReader(resp.Body)
			start := time.Now()
			var worst time.Duration
			for i := 0; i < 3 || time.Since(start) < 4*unaryTimeout; i++ {
				svc.events <- fmt.Sprint("event ", i)
				sent := <-svc.sent
				line, err := br.ReadString('\n')
				took := time.Since(sent)
				if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
					t.Fatalf("event %d: %q, %v", i, line, err)
				}
				br.ReadString('\n')
				if i == 0 {
					t.Logf("the first event reached the client %v after the service sent it", took)
					if took > 50*time.Millisecond {
						t.Errorf("the first event took %v, want under 50ms", took)
					}
				}
				worst = max(worst, took)
				time.Sleep(unaryTimeout / 5)
			}
			t.Logf("events for %v, past the default deadline of %v; the slowest took %v", time.Since(start), unaryTimeout, worst)
			resp.Body.Close()
			select {
			case <-svc.gone:
			case <-time.After(10 * time.Second):
				t.Fatal("the service's request went on after its client left")
			}
		})
	}
}

// TestWebSocketThroughAgents: issue 18. A WebSocket echo through two
// agents, from every HTTP entry point (through the proxy as an HTTP
// proxy's client does: the upgrade request in absolute form): 10,000
// messages round-trip each way.
func TestWebSocketThroughAgents(t *testing.T) {
	_, entries := streamingMesh(t, unaryTimeout)
	n := 10000
	if testing.Short() {
		n = 300
	}
	for _, e := range entries {
		t.Run(e.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.base, "http")+"/ws", &websocket.DialOptions{HTTPClient: e.client})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			start := time.Now()
			for i := range n {
				msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1+(i*37)%4000)
				if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil || typ != websocket.MessageBinary || !bytes.Equal(got, msg) {
					t.Fatalf("message %d: echoed %v %d bytes, %v", i, typ, len(got), err)
				}
			}
			t.Logf("%d messages round-tripped in %v", n, time.Since(start))
			if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

// TestHTTPStreamsInProcess: issue 18. The in-process sides stream too: a
// client of an agent's in-process Transport gets a streamed answer as it
// arrives and sends a body of unknown length as it comes, to a service
// served in process by another agent's http.Handler.
func TestHTTPStreamsInProcess(t *testing.T) {
	b := meshtest.Broker(t)
	svc := &streamingService{events: make(chan string), sent: make(chan time.Time, 100), gone: make(chan struct{}, 10)}
	startAgent(t, b, Config{Service: "orders"}, func(a *Agent) { a.Handle(svc) })
	// The default deadline bounds the head of the upload's answer, which
	// comes once the body is read: left at its 30 s.
	web := startAgent(t, b, Config{Service: "web"})
	client := &http.Client{Transport: web.Transport()}

	resp, err := client.Get("http://orders/events")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	start := time.Now()
	for i := 0; time.Since(start) < 3*unaryTimeout; i++ {
		svc.events <- fmt.Sprint(i)
		sent := <-svc.sent
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		br.ReadString('\n')
		if took := time.Since(sent); took > 50*time.Millisecond {
			t.Errorf("event %d took %v", i, took)
		}
		time.Sleep(unaryTimeout / 5)
	}
	resp.Body.Close()
	<-svc.gone

	size := int64(16 << 20)
	want, _ := meshtest.Digest(t, meshtest.Body(7, size))
	resp, err = client.Post("http://orders/upload", "application/octet-stream", io.MultiReader(meshtest.Body(7, size)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != fmt.Sprintf("%s %d", want, size) {
		t.Fatalf("the service got %q, want %s %d", got, want, size)
	}
	resp, err = client.Get(fmt.Sprintf("http://orders/download?n=%d", size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, n := meshtest.Digest(t, resp.Body); got != want || n != size {
		t.Fatalf("downloaded %d bytes, digest %s", n, got)
	}
}
