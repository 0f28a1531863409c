package batchconn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair is both ends of a loopback TCP connection, the dialed one
// made by a Dialer, so wrapped in a Conn.
func tcpPair(t *testing.T, timeout time.Duration) (*Conn, net.Conn) {
	t.Helper()
	c, peer := pair(t, Dialer{Timeout: 5 * time.Second, WriteTimeout: timeout}.Dial)
	return c.(*Conn), peer
}

// rawPair is both ends of a loopback TCP connection.
func rawPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	return pair(t, net.Dial)
}

// pair is both ends of a loopback TCP connection, the first made by dial.
func pair(t *testing.T, dial func(network, address string) (net.Conn, error)) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c, peer
}

// counting counts the writes made to its Conn.
type counting struct {
	net.Conn
	writes atomic.Int32
}

func (c *counting) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestEverythingArrivesInOrder: what many goroutines write arrives whole,
// each goroutine's writes in the order it made them.
func TestEverythingArrivesInOrder(t *testing.T) {
	c, peer := tcpPair(t, time.Minute)
	const writers, each = 16, 500
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := fmt.Fprintf(c, "%02d:%04d\n", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(<-got, []byte("\n")), []byte("\n"))
	if len(lines) != writers*each {
		t.Fatalf("%d lines arrived, want %d", len(lines), writers*each)
	}
	next := make([]int, writers)
	for _, l := range lines {
		var w, i int
		if _, err := fmt.Sscanf(string(l), "%02d:%04d", &w, &i); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: line %d arrived where %d was due", w, i, next[w])
		}
		next[w]++
	}
}

// TestWritesDuringASendLeaveTogether: what is written while a batch is
// being sent leaves in one write after it, however many Writes made it.
func TestWritesDuringASendLeaveTogether(t *testing.T) {
	a, b := net.Pipe() // a write on a waits for b's read
	defer b.Close()
	under := &counting{Conn: a}
	c := New(under, time.Minute)
	defer c.Close()
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	for under.writes.Load() == 0 {
		time.Sleep(time.Millisecond) // the writer is now held in its write
	}
	for i := range 10 {
		if _, err := c.Write([]byte{'0' + byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	var got []byte
	for len(got) < len("first0123456789") {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "first0123456789" {
		t.Fatalf("read %q", got)
	}
	if n := under.writes.Load(); n != 2 {
		t.Fatalf("11 Writes made %d writes to the connection, want 2", n)
	}
}

// TestCloseSendsWhatIsPending: a Close right after a Write sends it before
// the connection closes.
func TestCloseSendsWhatIsPending(t *testing.T) {
	c, peer := tcpPair(t, time.Minute)
	payload := bytes.Repeat([]byte("x"), 100_000)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(peer)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes (%v), want %d then EOF", len(got), err, len(payload))
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a Write after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a second Close: %v, want net.ErrClosed", err)
	}
}

// TestCloseDoesNotWaitForAPeerThatStoppedReading: Close ends within about
// CloseGrace though the peer reads nothing and a Write waits for room.
func TestCloseDoesNotWaitForAPeerThatStoppedReading(t *testing.T) {
	a, b := net.Pipe() // nobody reads b
	defer b.Close()
	under := &counting{Conn: a}
	c := New(under, 0) // no write timeout: only Close ends the stuck write
	c.maxPending = 10
	if _, err := c.Write([]byte("stuck")); err != nil {
		t.Fatal(err)
	}
	for under.writes.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The writer holds "stuck"; this one waits in pending; the next
	// waits for room.
	if _, err := c.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("more"))
		blocked <- err
	}()
	select {
	case err := <-blocked:
		t.Fatalf("a Write past MaxPending returned (%v) while nothing was sent", err)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a peer that reads nothing", d)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the waiting Write ended with %v, want the Conn's end", err)
	}
}

// TestWriteTimeout: a write the peer does not take within the timeout
// fails the Conn, and the next Write says so.
func TestWriteTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := New(a, 20*time.Millisecond)
	defer c.Close()
	if _, err := c.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Write([]byte("x"))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatalf("Write: %v, want the timeout", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no Write failed after the write timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeadlines: a write deadline set by the Conn's user does not reach
// the connection (the writer bounds its writes); a read deadline does.
func TestDeadlines(t *testing.T) {
	c, _ := tcpPair(t, time.Minute)
	past := time.Now().Add(-time.Second)
	if err := c.SetWriteDeadline(past); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(past); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("still sent")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
}

// TestBigBatchNotKept: a message larger than MaxPending is sent whole,
// and its buffer is not kept for the next batch, nor does the pending
// buffer grow past about MaxPending with many writes: an agent's
// connection holds tens of KiB, not megabytes, after a flood.
func TestBigBatchNotKept(t *testing.T) {
	c, peer := tcpPair(t, time.Minute)
	got := make(chan int, 1)
	go func() {
		n, _ := io.Copy(io.Discard, peer)
		got <- int(n)
	}()
	big := bytes.Repeat([]byte("x"), 4*MaxPending)
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	small := bytes.Repeat([]byte("y"), 1000)
	for range 2000 {
		if _, err := c.Write(small); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		p := cap(c.pending)
		c.mu.Unlock()
		if p > 2*MaxPending+len(small) {
			t.Fatalf("the pending buffer grew to %d bytes", p)
		}
	}
	for {
		c.mu.Lock()
		busy, spare := c.busy, cap(c.spare)
		c.mu.Unlock()
		if !busy {
			if spare > MaxPending {
				t.Fatalf("a buffer of %d bytes kept for the next batch, want at most %d", spare, MaxPending)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if n := <-got; n != len(big)+2000*len(small) {
		t.Fatalf("%d bytes arrived, want %d", n, len(big)+2000*len(small))
	}
}
