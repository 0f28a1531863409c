package batchconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestAFailedWriteEndsReads (review of 07588fb): once the writer's write
// fails (here the write timeout: a peer that stopped reading), the Conn
// is done for: what it dropped leaves a gap, perhaps a truncated
// protocol operation, in the stream. Its reads must fail too, as
// decision 183 says, so that nats.go's read loop notices and reconnects
// at once (nats.go closes the connection itself after a partial write,
// but a Conn's Write never reports one). They went on: nats.go learnt of
// it only from its stale-connection pings.
func TestAFailedWriteEndsReads(t *testing.T) {
	c, _ := tcpPair(t, 100*time.Millisecond) // the peer reads nothing
	chunk := make([]byte, 256<<10)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Write(chunk); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write: %v, want the write timeout", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Write failed against a peer that reads nothing")
		}
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after the Conn failed: %v, want it to fail at once", err)
	}
}

// TestADroppedConnIsCollected (review of 07588fb): nats.go drops without
// Close a connection whose handshake failed during a reconnect (see
// natsconn.TestRefusedReconnectsLeaveNoConnection); an idle Conn must
// then hold no goroutine, so that it and its socket are collected as a
// net.TCPConn would be.
func TestADroppedConnIsCollected(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := New(a, time.Minute)
	go b.Read(make([]byte, 8))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	collected := make(chan struct{})
	runtime.SetFinalizer(c, func(*Conn) { close(collected) })
	c = nil
	for range 50 {
		runtime.GC()
		select {
		case <-collected:
			a.Close()
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("a Conn dropped without Close was never collected: its writer goroutine holds it")
}

// TestCloseDuringWrites (review of 07588fb): Close while many goroutines
// write: it returns, every Write returns (those after it with
// net.ErrClosed), what was sent is a prefix of each writer's writes, and
// no goroutine is left (goleak).
func TestCloseDuringWrites(t *testing.T) {
	for range 20 {
		c, peer := tcpPair(t, time.Minute)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(peer)
			got <- b
		}()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(c, "%d:%06d\n", w, i); err != nil {
						if !errors.Is(err, net.ErrClosed) {
							t.Errorf("Write: %v", err)
						}
						return
					}
				}
			}()
		}
		time.Sleep(5 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		b := <-got
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i] // the last line may be cut by the close deadline
		}
		next := make([]int, 8)
		for _, l := range bytes.Split(b, []byte("\n")) {
			var w, i int
			if _, err := fmt.Sscanf(string(l), "%d:%06d", &w, &i); err != nil || i != next[w] {
				t.Fatalf("line %q (%v), want writer %d's line %d", l, err, w, next[w])
			}
			next[w]++
		}
	}
}
