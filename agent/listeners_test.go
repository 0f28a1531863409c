package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// countingUpstream is a real HTTP service that counts the requests it gets
// and records their paths.
type countingUpstream struct {
	*httptest.Server
	n     atomic.Int64
	mu    sync.Mutex
	paths []string
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	t.Helper()
	u := &countingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		u.n.Add(1)
		u.mu.Lock()
		u.paths = append(u.paths, r.Method+" "+r.URL.RequestURI())
		u.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *countingUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.paths...)
}

// meshListeners starts orders (on up) and web, and returns web's HTTP proxy
// and a bind port to orders.
func meshListeners(t *testing.T, up string, webCfg Config) (web *Agent, proxy, bind string) {
	t.Helper()
	b := meshtest.Broker(t)
	startAgent(t, b, Config{Service: "orders", Upstream: up})
	webCfg.Service = "web"
	web = startAgent(t, b, webCfg)
	proxy = listen(t, web.ServeHTTPProxy)
	bind = listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })
	return web, proxy, bind
}

// rawExchange writes raw to addr and reads every response until the
// server closes the connection (or 5 s pass: then closed is false).
func rawExchange(t *testing.T, addr, raw string) (resps []*http.Response, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(c, raw)
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return resps, !(errors.As(err, &ne) && ne.Timeout())
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		resps = append(resps, resp)
	}
}

// TestListenersRefuseSmuggling: issue 9 item 14. Every ambiguous framing
// shape, sent after a plain request on the same connection and with a
// second request hidden behind it, gets 400 bad-request and the connection
// closed, on the proxy and on a bind port: the service receives the plain
// request only.
func TestListenersRefuseSmuggling(t *testing.T) {
	up := newCountingUpstream(t)
	_, proxy, bind := meshListeners(t, up.URL, Config{})
	const plain = "GET /first HTTP/1.1\r\nHost: orders\r\n\r\n"
	const hidden = "GET /smuggled HTTP/1.1\r\nHost: orders\r\n\r\n"
	shapes := []struct{ name, head string }{
		{"CL and TE", "POST /a HTTP/1.1\r\nHost: orders\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"},
		{"TE with a trailing space", "POST /a HTTP/1.1\r\nHost: orders\r\nContent-Length: 4\r\nTransfer-Encoding: chunked \r\n"},
		{"TE with a tab", "POST /a HTTP/1.1\r\nHost: orders\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n"},
		{"lower-case names", "POST /a HTTP/1.1\r\nhost: orders\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n"},
		{"obs-folded TE", "POST /a HTTP/1.1\r\nHost: orders\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n"},
		{"HTTP/1.0 with TE", "POST /a HTTP/1.0\r\nHost: orders\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"},
	}
	// Go's server answers "OPTIONS *" itself unless told not to; the guard,
	// which pairs heads with handled requests, must not lose count.
	const optionsStar = "OPTIONS * HTTP/1.1\r\nHost: orders\r\n\r\n"
	for _, l := range []struct{ name, addr string }{{"proxy", proxy}, {"bind", bind}} {
		t.Run(l.name+"/after OPTIONS *", func(t *testing.T) {
			before := up.n.Load()
			resps, closed := rawExchange(t, l.addr, optionsStar+plain+shapes[0].head+"\r\n0\r\n\r\n"+hidden)
			if got := up.n.Load() - before; got != 1 {
				t.Errorf("upstream got %d requests, want exactly 1 (the plain one); all seen: %v", got, up.seen())
			}
			if n := len(resps); n != 3 || resps[1].StatusCode != 200 || resps[2].StatusCode != 400 || !closed {
				var got []string
				for _, r := range resps {
					got = append(got, r.Status+" "+r.Header.Get(wire.HeaderError))
				}
				t.Errorf("answers %v (closed %v), want OPTIONS answered, 200, then 400 and close", got, closed)
			}
		})
	}
	for _, l := range []struct{ name, addr string }{{"proxy", proxy}, {"bind", bind}} {
		for _, s := range shapes {
			t.Run(l.name+"/"+s.name, func(t *testing.T) {
				before := up.n.Load()
				resps, closed := rawExchange(t, l.addr, plain+s.head+"\r\n0\r\n\r\n"+hidden)
				if got := up.n.Load() - before; got != 1 {
					t.Errorf("upstream got %d requests, want exactly 1 (the plain one); all seen: %v", got, up.seen())
				}
				if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 ||
					resps[1].Header.Get(wire.HeaderError) != string(wire.KindBadRequest) {
					var got []string
					for _, r := range resps {
						got = append(got, r.Status+" "+r.Header.Get(wire.HeaderError))
					}
					t.Errorf("answers %v, want 200 then 400 bad-request", got)
				}
				if !closed {
					t.Error("connection left open after the refusal")
				}
			})
		}
	}
}

// TestListenersHeaderLimitOneAnswer: issue 9 item 8. Headers over the limit
// get 431 with Mesh-Error: headers-too-large whatever their size, from the
// mesh's own check or from Go's server, on the agent's listeners.
func TestListenersHeaderLimitOneAnswer(t *testing.T) {
	up := newCountingUpstream(t)
	_, proxy, bind := meshListeners(t, up.URL, Config{})
	for _, l := range []struct{ name, addr string }{{"proxy", proxy}, {"bind", bind}} {
		for _, size := range []int{66 << 10, 70 << 10, 100 << 10, 200 << 10, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%dKiB", l.name, size>>10), func(t *testing.T) {
				raw := "GET / HTTP/1.1\r\nHost: orders\r\nConnection: close\r\nX-Big: " + strings.Repeat("a", size) + "\r\n\r\n"
				resps, _ := rawExchange(t, l.addr, raw)
				if len(resps) != 1 || resps[0].StatusCode != 431 || resps[0].Header.Get(wire.HeaderError) != string(wire.KindHeadersTooLarge) {
					var got []string
					for _, r := range resps {
						got = append(got, r.Status+" "+r.Header.Get(wire.HeaderError))
					}
					t.Errorf("answers %v, want one 431 headers-too-large", got)
				}
			})
		}
	}
	t.Run("under the limit", func(t *testing.T) {
		resps, _ := rawExchange(t, proxy, "GET / HTTP/1.1\r\nHost: orders\r\nConnection: close\r\nX-Big: "+strings.Repeat("a", 50<<10)+"\r\n\r\n")
		if len(resps) != 1 || resps[0].StatusCode != 200 {
			t.Errorf("a 50 KiB header was refused: %v", resps)
		}
	})
	t.Run("Go's other refusals in the mesh's form", func(t *testing.T) {
		resps, _ := rawExchange(t, proxy, "GET / HTTP/1.1\r\n\r\n") // no Host
		if len(resps) != 1 || resps[0].StatusCode != 400 || resps[0].Header.Get(wire.HeaderError) != string(wire.KindBadRequest) {
			t.Errorf("answers %v, want 400 bad-request", resps)
		}
	})
}

// TestListenersStalledBody: issue 9 item 15. A body that stops arriving is
// answered 408 request-timeout within the body timeout, and such a client
// does not hold up Shutdown.
func TestListenersStalledBody(t *testing.T) {
	up := newCountingUpstream(t)
	const bodyTimeout = 300 * time.Millisecond
	web, proxy, bind := meshListeners(t, up.URL, Config{BodyTimeout: bodyTimeout})
	stall := "POST /upload HTTP/1.1\r\nHost: orders\r\nContent-Length: 100\r\n\r\n0123456789"
	for _, l := range []struct{ name, addr string }{{"proxy", proxy}, {"bind", bind}} {
		t.Run(l.name, func(t *testing.T) {
			start := time.Now()
			resps, closed := rawExchange(t, l.addr, stall)
			took := time.Since(start)
			t.Logf("answered after %v (body timeout %v)", took, bodyTimeout)
			if len(resps) != 1 || resps[0].StatusCode != http.StatusRequestTimeout ||
				resps[0].Header.Get(wire.HeaderError) != string(wire.KindRequestTimeout) {
				t.Fatalf("answers %v, want one 408 request-timeout", resps)
			}
			if !closed {
				t.Error("connection left open after a timed-out body")
			}
		})
	}
	if n := up.n.Load(); n != 0 {
		t.Errorf("upstream got %d requests with a partial body", n)
	}

	t.Run("does not hold up shutdown", func(t *testing.T) {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, stall)
		// Give the server the head before shutting down.
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if err := web.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown with a stalled client: %v", err)
		}
		t.Logf("shutdown took %v with a stalled client", time.Since(start))
	})
}

// TestListenersRefuseUpgrade: issue 9 item 18. The HTTP/2 preface where
// a request was expected is refused 400 and the connection closed; no
// upgrade is sent on as a plain GET (WebSocket upgrades cross the mesh:
// TestWebSocketThroughAgents; h2c upgrades switch to HTTP/2:
// TestHTTP2ThroughProxyAndBind).
func TestListenersRefuseUpgrade(t *testing.T) {
	up := newCountingUpstream(t)
	_, proxy, bind := meshListeners(t, up.URL, Config{})
	for _, l := range []struct{ name, addr string }{{"proxy", proxy}, {"bind", bind}} {
		t.Run(l.name+"/HTTP/2 preface after a request", func(t *testing.T) {
			resps, closed := rawExchange(t, l.addr, "GET /first HTTP/1.1\r\nHost: orders\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
			if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != http.StatusBadRequest ||
				resps[1].Header.Get(wire.HeaderError) != string(wire.KindBadRequest) || !closed {
				t.Errorf("answers %v (closed %v), want 200, then 400 bad-request and the connection closed", resps, closed)
			}
		})
	}
	if seen := up.seen(); len(seen) != 2 || seen[0] != "GET /first" || seen[1] != "GET /first" {
		t.Errorf("upstream got %v, want the two plain requests only", seen)
	}
}
