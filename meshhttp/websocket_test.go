package meshhttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// echoWebSocket is a WebSocket service that sends back every message it
// gets, until its client closes.
var echoWebSocket = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
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
})

// wsURL is the ws:// URL of an http:// one.
func wsURL(u string) string { return "ws" + strings.TrimPrefix(u, "http") }

// echoes sends n messages of varied sizes on c and checks each echo.
func echoes(t *testing.T, ctx context.Context, c *websocket.Conn, n int) {
	t.Helper()
	for i := range n {
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1+(i*37)%4000)
		typ := websocket.MessageBinary
		if i%2 == 0 {
			msg = []byte(fmt.Sprintf("message %d", i))
			typ = websocket.MessageText
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: read: %v", i, err)
		}
		if gotTyp != typ || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: echoed %v %q, want %v %q", i, gotTyp, got, typ, msg)
		}
	}
}

// TestWebSocketEcho: issue 18. A WebSocket client's upgrade crosses the
// mesh through a Proxy served as the mesh's listeners serve it (the
// guard lets it through), to a service behind an Upstream, and to an
// in-process handler (which takes over an in-memory connection); 10,000
// messages round-trip, then the client's close reaches the service and
// the service's close the client.
func TestWebSocketEcho(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			mp := newMeshPair(t, echoWebSocket, kind)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, wsURL(mp.url)+"/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			n := 10000
			if testing.Short() {
				n = 500
			}
			start := time.Now()
			echoes(t, ctx, c, n)
			t.Logf("%d messages echoed in %v", n, time.Since(start))
			if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

// TestUpgradeRefused: issue 18. A service that does not switch protocols
// answers as it would any request: its answer reaches the client, and
// the tunnel ends empty.
func TestUpgradeRefused(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			mp := newMeshPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Asked", r.Header.Get("Upgrade")+"/"+r.Header.Get("Connection"))
				http.Error(w, "no websockets here", http.StatusUpgradeRequired)
			}), kind)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, resp, err := websocket.Dial(ctx, wsURL(mp.url)+"/", nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("X-Asked") != "websocket/Upgrade" {
				t.Fatalf("got %v, %v; want the service's 426, the upgrade asked for", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
		})
	}
}

// TestH2CUpgradeNotCarried: issue 18. An h2c upgrade that reaches a Proxy
// (its listener did not switch it to HTTP/2) is sent as a plain request:
// HTTP/2 ends at the listener, never at the service.
func TestH2CUpgradeNotCarried(t *testing.T) {
	s := &recording{}
	p := &Proxy{Sender: s, Caller: "web"}
	r := httptest.NewRequest("GET", "http://orders/", nil)
	r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	r.Header.Set("Upgrade", "h2c")
	r.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	w, _ := serve(p, r)
	c, _ := s.last(t)
	if w.Code != 200 || c.Body.Streamed() || c.Header[httpwire.HeaderUpgrade] != nil || c.Header["Upgrade"] != nil {
		t.Fatalf("answered %d; sent %v, streamed %v", w.Code, c.Header, c.Body.Streamed())
	}
}
