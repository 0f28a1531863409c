package natsconn

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// batchWriters counts the goroutines running in package batchconn.
func batchWriters() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "/internal/batchconn.") {
			n++
		}
	}
	return n
}

// TestRefusedReconnectsLeaveNoConnection (review of 07588fb): a broker
// that accepts the TCP connection and then refuses the client (here its
// connection limit is reached; the same for a frozen broker, a TLS
// mismatch or a load balancer whose backend is down) fails nats.go's
// processConnectInit in doReconnect, which dials again without closing
// the connection it made. A plain net.TCPConn so left is closed by its
// finalizer; a batchconn.Conn is held by its own writer goroutine, so
// every attempt (4 a second) leaks a goroutine and a file descriptor
// until the process runs out of them.
func TestRefusedReconnectsLeaveNoConnection(t *testing.T) {
	b := meshtest.BareBroker(t)
	addr, _ := url.Parse(b.ClientURL())
	nc, err := Connect(context.Background(), "web", Config{URL: b.ClientURL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The broker comes back with room for one connection, which another
	// client takes first.
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("max_connections: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = meshtest.Broker(t, func(c *broker.Config) {
		c.Listen = addr.Host
		c.ConfigFile = conf
		c.NoJetStream = true
		c.LameDuckDuration = -1
	})
	meshtest.Conn(t, b)
	start := batchWriters()
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	fd0 := fds()
	// nats.go counts a reconnect once the broker accepted the TCP
	// connection, before the handshake it then refuses: ten attempts,
	// each of which would leak one.
	const attempts = 10
	r0 := nc.Stats().Reconnects
	for deadline := time.Now().Add(15 * time.Second); nc.Stats().Reconnects < r0+attempts; {
		if time.Now().After(deadline) {
			t.Fatalf("%d refused reconnects in 15 s, want %d", nc.Stats().Reconnects-r0, attempts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := batchWriters(); n > start+1 {
		t.Errorf("%d batchconn goroutines after %d refused reconnects (%d before): each attempt leaked its connection", n, attempts, start)
	}
	if fd0 > 0 { // Linux: the connections dropped are closed once collected
		var fd1 int
		for range 100 {
			runtime.GC()
			if fd1 = fds(); fd1 <= fd0+1 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if fd1 > fd0+1 {
			t.Errorf("%d file descriptors open after %d refused reconnects, %d before", fd1, attempts, fd0)
		}
	}
	nc.Close()
}
