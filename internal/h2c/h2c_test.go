package h2c_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/h2ctest"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server serves h on a loopback port with h2c enabled, the way the mesh's
// listeners do (the upgrade tried first, then h), and returns its address;
// it shuts down in t.Cleanup.
func server(t *testing.T, h http.Handler) (addr string, hs *http.Server, up *h2c.Server) {
	t.Helper()
	hs = &http.Server{ReadHeaderTimeout: 5 * time.Second}
	up = h2c.Enable(hs)
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h2c.IsUpgrade(r) && up.Upgrade(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		up.Shutdown(ctx)
		<-served
	})
	return l.Addr().String(), hs, up
}

// describe answers with what the handler saw: protocol, host, path and
// the headers the upgrade might leave behind.
var describe = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "%s %s %s", r.Proto, r.Host, r.URL.Path)
	for _, h := range []string{"Connection", "Upgrade", "Http2-Settings", "X-Hop", "X-Keep"} {
		if v := r.Header.Get(h); v != "" {
			fmt.Fprintf(w, " %s=%s", h, v)
		}
	}
})

// TestPriorKnowledge: a client that opens with the HTTP/2 preface is
// served over HTTP/2 by net/http itself, and an HTTP/1.1 client on the
// same port is served as before.
func TestPriorKnowledge(t *testing.T) {
	addr, _, _ := server(t, describe)
	for _, tt := range []struct {
		name   string
		client *http.Client
		want   string
	}{
		{"HTTP/2", h2ctest.Client(t), "HTTP/2.0 " + addr + " /x"},
		{"HTTP/1.1", &http.Client{Transport: &http.Transport{}}, "HTTP/1.1 " + addr + " /x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get("http://" + addr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tt.client.CloseIdleConnections()
			if string(body) != tt.want {
				t.Errorf("answer %q, want %q", body, tt.want)
			}
		})
	}
}

// TestUpgrade: Upgrade: h2c switches the connection; the request is
// answered over HTTP/2 on stream 1, without the headers that named the
// connection's options (and those Connection lists, X-Hop), and the
// connection serves more requests over HTTP/2.
func TestUpgrade(t *testing.T) {
	addr, _, _ := server(t, describe)
	c := h2ctest.Upgrade(t, addr, "orders", "/first", "X-Keep: kept", "Connection: X-Hop", "X-Hop: 1")
	second := c.Get("/second")
	for id, want := range map[uint32]string{1: "HTTP/2.0 orders /first X-Keep=kept", second: "HTTP/2.0 orders /second"} {
		if a := c.Await(id); a.Status != 200 || a.Body != want {
			t.Errorf("stream %d: %d %q, want 200 %q", id, a.Status, a.Body, want)
		}
	}
}

// exchange writes raw to addr and reads the first answer.
func exchange(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	return resp
}

// TestNotUpgraded: a request the server does not switch is served over
// HTTP/1.1 and gets its answer (RFC 9110 section 7.8 lets a server ignore
// Upgrade): one with a body, over HTTP/1.0, or without a valid
// HTTP2-Settings and the Connection options RFC 7540 section 3.2 requires.
func TestNotUpgraded(t *testing.T) {
	addr, _, _ := server(t, describe)
	const settings = "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
	const conn = "Connection: Upgrade, HTTP2-Settings\r\n"
	for _, tt := range []struct{ name, head string }{
		{"a body", "POST /x HTTP/1.1\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\n" + settings + "Content-Length: 2\r\n\r\nhi"},
		{"a chunked body", "POST /x HTTP/1.1\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\n" + settings + "Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"},
		{"HTTP/1.0", "GET /x HTTP/1.0\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\n" + settings + "\r\n"},
		{"no HTTP2-Settings", "GET /x HTTP/1.1\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\n\r\n"},
		{"two HTTP2-Settings", "GET /x HTTP/1.1\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\n" + settings + settings + "\r\n"},
		{"HTTP2-Settings not base64url", "GET /x HTTP/1.1\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\nHTTP2-Settings: a+b/\r\n\r\n"},
		{"HTTP2-Settings not whole settings", "GET /x HTTP/1.1\r\nHost: orders\r\n" + conn + "Upgrade: h2c\r\nHTTP2-Settings: AAMAAAB\r\n\r\n"},
		{"HTTP2-Settings not a connection option", "GET /x HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n" + settings + "\r\n"},
		{"Upgrade not a connection option", "GET /x HTTP/1.1\r\nHost: orders\r\nConnection: HTTP2-Settings\r\nUpgrade: h2c\r\n" + settings + "\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := exchange(t, addr, tt.head)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.ProtoMajor != 1 || !strings.HasPrefix(string(body), "HTTP/1.") {
				t.Errorf("got %s %s %q, want 200 over HTTP/1.1", resp.Proto, resp.Status, body)
			}
		})
	}
}

// TestShutdownWaitsForUpgradedStreams: Shutdown sends an upgraded
// connection GOAWAY, lets the stream in flight finish, and returns once
// the connection has closed.
func TestShutdownWaitsForUpgradedStreams(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	addr, hs, up := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	}))
	c := h2ctest.Upgrade(t, addr, "orders", "/slow")
	<-started
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := hs.Shutdown(ctx)
		done <- errors.Join(err, up.Shutdown(ctx))
	}()
	if last := c.AwaitGoAway(); last != 1 {
		t.Errorf("GOAWAY's last stream %d, want 1", last)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a stream in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if a := c.Await(1); a.Status != 200 || a.Body != "done" {
		t.Errorf("stream 1: %d %q, want 200 done", a.Status, a.Body)
	}
	c.AwaitClose()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestShutdownDeadlineClosesUpgraded: when Shutdown's context ends first,
// the upgraded connection is closed, and later upgrades are served over
// HTTP/1.1.
func TestShutdownDeadlineClosesUpgraded(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	addr, _, up := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		describe(w, r)
	}))
	c := h2ctest.Upgrade(t, addr, "orders", "/slow")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := up.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	c.AwaitClose()
	resp := exchange(t, addr, "GET /x HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Errorf("an upgrade after Shutdown: %s %s, want 200 over HTTP/1.1", resp.Proto, resp.Status)
	}
}
