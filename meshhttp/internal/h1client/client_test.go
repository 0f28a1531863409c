package h1client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// post is a whole POST of body to url, as the Upstream sends one.
func post(t *testing.T, ctx context.Context, url, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newClient(t *testing.T) *Client {
	c := &Client{Fallback: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// readAll reads and closes resp's body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// countingServer is a test server of h that counts the connections
// made to it in conns.
func countingServer(t *testing.T, conns *atomic.Int32, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestKeepsConnectionsAlive: sequential calls share one connection, made
// in the caller's goroutine, each answer whole and right.
func TestKeepsConnectionsAlive(t *testing.T) {
	var conns atomic.Int32
	srv := countingServer(t, &conns, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Write(b)
	})
	c := newClient(t)
	for i := range 20 {
		body := strings.Repeat("x", i*100)
		resp, err := c.RoundTrip(post(t, context.Background(), srv.URL+"/echo", body))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != body || resp.Header.Get("X-Method") != "POST" {
			t.Fatalf("call %d: %d bytes, method %q", i, len(got), resp.Header.Get("X-Method"))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 20 calls, want 1", n)
	}
}

// rawServer serves each connection with serve, on loopback.
func rawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestServerClosedIdle: a connection its server closed while it was
// idle is not used: a POST goes on a new one and is served once (it
// failed, unsent again, without the look at the socket).
func TestServerClosedIdle(t *testing.T) {
	var served atomic.Int32
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, r.Body)
		served.Add(1)
		io.WriteString(c, okAnswer)
		// An idle timeout: the server closes the connection it kept.
	})
	c := newClient(t)
	for i := range 3 {
		resp, err := c.RoundTrip(post(t, context.Background(), url, "hello"))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		readAll(t, resp)
		// Let the server's close reach this side.
		time.Sleep(20 * time.Millisecond)
	}
	if n := served.Load(); n != 3 {
		t.Fatalf("served %d, want 3", n)
	}
}

// losesSecond is a server that answers the first request on each
// connection and closes it on reading the second, unanswered; requests
// counts those it read.
func losesSecond(t *testing.T, requests *atomic.Int32) string {
	return rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			requests.Add(1)
			if i == 1 {
				return // the second request on a connection is lost
			}
			io.WriteString(c, okAnswer)
		}
	})
}

// TestPostNeverSentTwice: a request that a reused connection loses with
// no answer is made again only when its method is idempotent: the POST
// fails, served once; the GET is answered.
func TestPostNeverSentTwice(t *testing.T) {
	var requests atomic.Int32
	url := losesSecond(t, &requests)
	for _, tc := range []struct {
		method  string
		wantErr bool
		want    int32
	}{{http.MethodPost, true, 2}, {http.MethodGet, false, 3}} {
		t.Run(tc.method, func(t *testing.T) {
			requests.Store(0)
			c := newClient(t)
			resp, err := c.RoundTrip(post(t, context.Background(), url, "a"))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			r, _ := http.NewRequest(tc.method, url, nil)
			if tc.method == http.MethodPost {
				r = post(t, context.Background(), url, "b")
			}
			resp, err = c.RoundTrip(r)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want an error: %v", err, tc.wantErr)
			}
			if err == nil {
				readAll(t, resp)
			}
			if n := requests.Load(); n != tc.want {
				t.Fatalf("server read %d requests, want %d", n, tc.want)
			}
		})
	}
}

// TestCancelEndsBody: the call given up ends a read of an answer's body
// that would not end, and its Close returns at once.
func TestCancelEndsBody(t *testing.T) {
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
		io.Copy(io.Discard, br) // and nothing more, until the client goes
	})
	c := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.RoundTrip(post(t, ctx, url, "x"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { _, err := resp.Body.Read(buf); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read after cancel: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancel did not end the read")
	}
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the body's end")
	}
}

// TestInformationalSkipped: a 103 before the answer is passed over, as
// net/http's Transport does.
func TestInformationalSkipped(t *testing.T) {
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if r, err := http.ReadRequest(br); err == nil {
			io.Copy(io.Discard, r.Body)
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+okAnswer)
		}
	})
	resp, err := newClient(t).RoundTrip(post(t, context.Background(), url, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("status %d, body %q", resp.StatusCode, got)
	}
}

// TestFallbackCarriesTrailers: a request with trailers goes to Fallback,
// which sends it chunked, so they reach the service.
func TestFallbackCarriesTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(r.Trailer.Get("X-Sum")))
	}))
	t.Cleanup(srv.Close)
	r := post(t, context.Background(), srv.URL, "abc")
	r.Body = io.NopCloser(bytes.NewReader([]byte("abc")))
	r.ContentLength = -1
	r.Trailer = http.Header{"X-Sum": {"42"}}
	resp, err := newClient(t).RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "42" {
		t.Fatalf("trailer %q at the service, want 42", got)
	}
}

// TestAnswerHeadBounded: an answer whose head does not end is refused
// past MaxResponseHeaderBytes, as net/http's Transport refuses it,
// rather than read without end.
func TestAnswerHeadBounded(t *testing.T) {
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Bomb: " + strings.Repeat("b", 1000) + "\r\n"
		for range 1 << 14 { // 16 MB of head, past net/http's default too
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	c := &Client{Fallback: &http.Transport{MaxResponseHeaderBytes: 64 << 10, DisableCompression: true}}
	t.Cleanup(c.CloseIdleConnections)
	_, err := c.RoundTrip(post(t, context.Background(), url, "x"))
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err %v, want the head refused", err)
	}
}

// TestCompressingFallbackMakesAll: a Fallback that compresses (net/http's
// default: it asks for gzip and undoes it) makes every request, so its
// users get what it does.
func TestCompressingFallbackMakesAll(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(r.Header.Get("Accept-Encoding")))
	}))
	t.Cleanup(srv.Close)
	c := &Client{Fallback: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.RoundTrip(post(t, context.Background(), srv.URL, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "gzip" {
		t.Fatalf("Accept-Encoding %q at the service, want the Fallback's gzip", got)
	}
}

// TestEarlyAnswerToLargeBody: a service that answers before reading a
// large body (a 413 for an upload it will not take) and reads no more
// has its answer returned, as net/http's Transport returns it (it writes
// the body while it waits for the answer), not a write that never ends
// and a timeout instead.
func TestEarlyAnswerToLargeBody(t *testing.T) {
	over := make(chan struct{})
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n")
		<-over // reads nothing more, keeps the connection
	})
	t.Cleanup(func() { close(over) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := strings.Repeat("x", 32<<20)
	resp, err := newClient(t).RoundTrip(post(t, ctx, url, body))
	if err != nil {
		t.Fatalf("err %v, want the service's 413", err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// TestFallbackSettingsHonored: what a Client does not do itself of its
// Fallback's settings makes the Fallback make every request, as it did
// for a Proxy: a bound on a host's connections, a wait for the answer's
// head, a Dial of its own, HTTP/2 without TLS. A Client that made them
// would drop each silently.
func TestFallbackSettingsHonored(t *testing.T) {
	t.Run("MaxConnsPerHost", func(t *testing.T) {
		var open, most atomic.Int32
		release := make(chan struct{})
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			w.Write([]byte("ok"))
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				n := open.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		c := &Client{Fallback: &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}}
		t.Cleanup(c.CloseIdleConnections)
		done := make(chan error, 4)
		for range 4 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				r, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				resp, err := c.RoundTrip(r)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
		}
		// The calls are all made (or waiting for the one connection)
		// before the service answers any.
		time.Sleep(200 * time.Millisecond)
		close(release)
		for range 4 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if n := most.Load(); n > 1 {
			t.Fatalf("%d connections open at once, MaxConnsPerHost 1", n)
		}
	})
	t.Run("ResponseHeaderTimeout", func(t *testing.T) {
		over := make(chan struct{})
		url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
			http.ReadRequest(br)
			<-over // never answers
		})
		t.Cleanup(func() { close(over) })
		c := &Client{Fallback: &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond, DisableCompression: true}}
		t.Cleanup(c.CloseIdleConnections)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		_, err := c.RoundTrip(r)
		if err == nil || ctx.Err() != nil {
			t.Fatalf("err %v, want the Fallback's ResponseHeaderTimeout before the call's deadline", err)
		}
	})
	t.Run("Dial", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		t.Cleanup(srv.Close)
		addr := srv.Listener.Addr().String()
		c := &Client{Fallback: &http.Transport{DisableCompression: true,
			Dial: func(string, string) (net.Conn, error) { return net.Dial("tcp", addr) }}}
		t.Cleanup(c.CloseIdleConnections)
		r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.2:1/", nil)
		resp, err := c.RoundTrip(r)
		if err != nil {
			t.Fatalf("err %v, want the Fallback's Dial used", err)
		}
		readAll(t, resp)
	})
	t.Run("UnencryptedHTTP2", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Proto)) }))
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Start()
		t.Cleanup(srv.Close)
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		c := &Client{Fallback: &http.Transport{DisableCompression: true, Protocols: p}}
		t.Cleanup(c.CloseIdleConnections)
		r, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := c.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "HTTP/2.0" {
			t.Fatalf("the service saw %q, want HTTP/2.0 (the Fallback's Protocols)", got)
		}
	})
}

// TestIdleConnTimeoutCloses: a connection idle past the Fallback's
// IdleConnTimeout is closed, as net/http's Transport closes it, even
// while calls keep coming on the others (the last one put is taken
// first: those under it were never looked at again), and with no call
// at all.
func TestIdleConnTimeoutCloses(t *testing.T) {
	var open atomic.Int32
	hold := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-hold
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := &Client{Fallback: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 100 * time.Millisecond, DisableCompression: true}}
	t.Cleanup(c.CloseIdleConnections)
	call := func(path string) error {
		r, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		resp, err := c.RoundTrip(r)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	// Four connections at once.
	done := make(chan error, 4)
	for range 4 {
		go func() { done <- call("/hold") }()
	}
	for wait := time.Now().Add(10 * time.Second); open.Load() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(wait) {
			close(hold)
			t.Fatalf("%d connections open after 10 s, want 4 at once", open.Load())
		}
	}
	close(hold)
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Then one call at a time, on one of them, for a while; then none.
	for range 30 {
		if err := call("/"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n > 0 {
		t.Fatalf("%d connections still open, idle long past IdleConnTimeout", n)
	}
}

// closeCounter is a request body that counts its closes.
type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (b *closeCounter) Close() error { b.closed.Add(1); return nil }

// TestBodyClosedOnFailure: a request's body is closed when its round
// trip fails before it was written (a dial refused), as http.RoundTripper
// requires and net/http's Transport does.
func TestBodyClosedOnFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // refused from now on
	body := &closeCounter{Reader: strings.NewReader("x")}
	r := post(t, context.Background(), url, "x")
	r.Body = body
	if _, err := newClient(t).RoundTrip(r); err == nil {
		t.Fatal("a call to a closed port answered")
	}
	if body.closed.Load() == 0 {
		t.Fatal("the request's body was not closed")
	}
}

// TestNoBodyKeepsConnection: an answer without a body (HEAD, 204, 304)
// gives its connection back once closed, unread, as net/http's
// Transport does; meshhttp closes a HEAD's answer without reading it.
func TestNoBodyKeepsConnection(t *testing.T) {
	var conns atomic.Int32
	srv := countingServer(t, &conns, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Length", "5")
	})
	c := newClient(t)
	for i := range 6 {
		method, path := http.MethodHead, "/"
		if i%2 == 1 {
			method, path = http.MethodGet, "/204"
		}
		r, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := c.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 6 answers without a body, want 1", n)
	}
}

// TestTooManyInformational: past five 1xx answers the round trip fails,
// as net/http's Transport fails it, and its connection is not reused:
// the answer still to come on it is not the next request's.
func TestTooManyInformational(t *testing.T) {
	var calls atomic.Int32
	url := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if calls.Add(1) == 1 {
				io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6))
				time.Sleep(200 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
		}
	})
	c := newClient(t)
	r, _ := http.NewRequest(http.MethodGet, url+"/1", nil)
	resp, err := c.RoundTrip(r)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d after six 1xx, want an error", resp.StatusCode)
	}
	r, _ = http.NewRequest(http.MethodGet, url+"/2", nil)
	resp, err = c.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "second" {
		t.Fatalf("the second request got %q, want its own answer", got)
	}
}

// TestDefaultPort: a URL without a port is dialed at port 80, as
// net/http's Transport dials it (a library user's Upstream.Base may have
// none).
func TestDefaultPort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(srv.Close)
	var dialed []string
	c := &Client{Fallback: &http.Transport{DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		}}}
	t.Cleanup(c.CloseIdleConnections)
	for _, url := range []string{"http://127.0.0.1/", "http://[::1]/"} {
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, err := c.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	if len(dialed) != 2 || dialed[0] != "127.0.0.1:80" || dialed[1] != "[::1]:80" {
		t.Fatalf("dialed %q, want 127.0.0.1:80 and [::1]:80", dialed)
	}
}

// TestRetryLeavesRequest: a GET made again on a new connection (its
// reused one lost it) is the caller's request unchanged, as
// http.RoundTripper requires: its body the caller's, the answer's
// Request the caller's.
func TestRetryLeavesRequest(t *testing.T) {
	var requests atomic.Int32
	url := losesSecond(t, &requests)
	c := newClient(t)
	resp, err := c.RoundTrip(post(t, context.Background(), url, "a"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	r, _ := http.NewRequest(http.MethodGet, url, strings.NewReader("query"))
	body := r.Body
	resp, err = c.RoundTrip(r)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if n := requests.Load(); n != 3 {
		t.Fatalf("server read %d requests, want 3 (the GET made again)", n)
	}
	if r.Body != body || resp.Request != r {
		t.Fatal("the round trip changed the caller's request")
	}
}

// TestNoHostRefused: a URL without a host is refused, as net/http's
// Transport refuses it, not dialed at ":80" (this host's port 80).
func TestNoHostRefused(t *testing.T) {
	var dialed []string
	c := &Client{Fallback: &http.Transport{DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			return nil, errors.New("no dial")
		}}}
	t.Cleanup(c.CloseIdleConnections)
	r, _ := http.NewRequest(http.MethodGet, "http:///path", nil)
	if _, err := c.RoundTrip(r); err == nil || len(dialed) > 0 {
		t.Fatalf("err %v, dialed %q; want the request refused, nothing dialed", err, dialed)
	}
}

// writeCounter counts the writes made on a connection.
type writeCounter struct {
	net.Conn
	writes *atomic.Int32
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// opaqueBody is a whole body of a type net/http does not know to be in
// memory (as the mesh's decoded bodies are not bytes.Reader), with the
// GetBody that makes its request the Client's.
type opaqueBody struct{ r *bytes.Reader }

func (b *opaqueBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *opaqueBody) Close() error               { return nil }

// TestHeadAndBodyInOneWrite: a request's head and whole body leave in
// one write, one segment for the service to read. net/http's
// Request.Write flushes the head by itself before a body it does not
// know to be in memory: two writes a call, and often two reads in the
// service.
func TestHeadAndBodyInOneWrite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	var writes atomic.Int32
	c := &Client{Fallback: &http.Transport{DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return writeCounter{nc, &writes}, nil
		}}}
	t.Cleanup(c.CloseIdleConnections)
	for _, size := range []int{1, 1024, 3000} {
		payload := bytes.Repeat([]byte{'x'}, size)
		r, err := http.NewRequest(http.MethodPost, srv.URL, &opaqueBody{bytes.NewReader(payload)})
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = int64(size)
		r.GetBody = func() (io.ReadCloser, error) { return &opaqueBody{bytes.NewReader(payload)}, nil }
		writes.Store(0)
		resp, err := c.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != string(payload) {
			t.Fatalf("body of %d bytes: the service got %d bytes back", size, len(got))
		}
		if n := writes.Load(); n != 1 {
			t.Fatalf("a request with a body of %d bytes took %d writes, want 1", size, n)
		}
	}
}
