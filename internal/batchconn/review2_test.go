package batchconn

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBurstsWithPausesArrive (second review): writers that pause between
// short bursts make the writer goroutine exit and start again many
// times; a Write racing with its exit must never leave bytes pending
// with no writer to send them.
func TestBurstsWithPausesArrive(t *testing.T) {
	c, peer := tcpPair(t, 10*time.Second)
	const writers, msgs = 8, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range msgs {
				if _, err := fmt.Fprintf(c, "%d:%d\n", w, i); err != nil {
					t.Error(err)
					return
				}
				if rand.IntN(4) == 0 {
					time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
				}
			}
		}()
	}
	next := make([]int, writers)
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	sc := bufio.NewScanner(peer)
	for range writers * msgs {
		if !sc.Scan() {
			t.Fatalf("stream ended (%v) with %v of %d lines read per writer", sc.Err(), next, msgs)
		}
		var w, i int
		if _, err := fmt.Sscanf(sc.Text(), "%d:%d", &w, &i); err != nil || i != next[w] {
			t.Fatalf("line %q, want writer %d's line %d", sc.Text(), w, next[w])
		}
		next[w]++
	}
	wg.Wait()
}

// closeCounting counts the Closes of its connection.
type closeCounting struct {
	net.Conn
	closes atomic.Int32
}

func (c *closeCounting) Close() error {
	c.closes.Add(1)
	return c.Conn.Close()
}

// TestCloseRacingAFailedWrite (second review): Close while the writer's
// write to a peer that stopped reading times out (the writer then closes
// the connection itself): whichever comes first, when Close returns the
// connection is closed, once.
func TestCloseRacingAFailedWrite(t *testing.T) {
	for i := range 20 {
		raw, peer := rawPair(t)
		cc := &closeCounting{Conn: raw}
		c := New(cc, 30*time.Millisecond)
		chunk := make([]byte, 1<<20)
		for range 16 { // more than the socket buffers hold
			if _, err := c.Write(chunk); err != nil {
				break
			}
		}
		time.Sleep(time.Duration(20+i) * time.Millisecond)
		c.Close()
		if n := cc.closes.Load(); n != 1 {
			t.Fatalf("round %d: the connection was closed %d times when Close returned, want once", i, n)
		}
		peer.Close()
	}
}
