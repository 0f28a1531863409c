package batchconn

import (
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"time"
)

// Conn is a net.Conn whose writes are gathered and made by a goroutine of
// its own once every goroutine ready to run has run (see the package
// doc). Reads pass through.
type Conn struct {
	net.Conn
	timeout    time.Duration // bounds each write to Conn (0: none)
	maxPending int

	mu      sync.Mutex
	room    sync.Cond // signalled when a batch is sent, the writer returns or Close begins
	pending []byte    // written, not yet sent
	spare   []byte    // the last batch's buffer, for the next
	busy    bool      // the writer runs: it has a batch to send or is sending one
	closing bool      // Close has begun
	closeBy time.Time // set by Close: no write of the writer lasts past it
	err     error     // the first write error, or net.ErrClosed after Close
}

// MaxPending is how many bytes a Conn holds unsent before a Write waits
// for the writer, as a write waits for a full socket buffer: twice
// nats.go's own write buffer (32 KiB), past which nats.go writes at once
// too. A burst of 32 calls' messages of 1 KiB fits; more would only be
// memory an agent holds (a Conn of 1 MiB held 4 MiB more in
// securitytest.TestStreamPingFlood: the pending buffer, grown by
// doubling, and the last batch's kept for the next).
const MaxPending = 64 << 10

// CloseGrace bounds how long Close spends sending what is pending: a
// peer that stopped reading holds no Close up for longer, as a socket's
// close does not wait for its peer.
const CloseGrace = 100 * time.Millisecond

// New wraps c. Each write to c is bounded by timeout (0: none), as
// nats.go bounds its own with FlusherTimeout.
func New(c net.Conn, timeout time.Duration) *Conn {
	bc := &Conn{Conn: c, timeout: timeout, maxPending: MaxPending}
	bc.room.L = &bc.mu
	return bc
}

// Write gathers p for the writer and returns at once, unless MaxPending
// bytes wait already: then it waits for them to be sent. The error of an
// earlier write, or net.ErrClosed once Close has begun, is returned here.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closing && len(c.pending) > 0 && len(c.pending)+len(p) > c.maxPending {
		c.room.Wait()
	}
	if c.closing {
		// Close sends what was written before it, and no more: a
		// stream of writes would hold it for CloseGrace and end in a
		// timeout.
		return 0, net.ErrClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	if !c.busy {
		c.busy = true
		go c.writer()
	}
	return len(p), nil
}

// writer sends what is pending, in the order written, until nothing is
// or the Conn fails. It runs only while there is something to send: a
// Conn dropped without Close (nats.go drops so a connection whose
// handshake failed during a reconnect) holds no goroutine, and is
// collected, its socket closed, as a net.TCPConn would be.
func (c *Conn) writer() {
	for {
		// Let every goroutine ready to run write first: the calls a
		// burst of messages woke add theirs to this batch.
		runtime.Gosched()
		c.mu.Lock()
		if c.err != nil || len(c.pending) == 0 {
			c.busy = false
			c.room.Broadcast()
			c.mu.Unlock()
			return
		}
		batch := c.pending
		c.pending = c.spare[:0]
		deadline := time.Time{}
		if c.timeout > 0 {
			deadline = time.Now().Add(c.timeout)
		}
		if !c.closeBy.IsZero() && (deadline.IsZero() || c.closeBy.Before(deadline)) {
			deadline = c.closeBy
		}
		// Under the lock, so that Close's deadline, set under it too, is
		// never overwritten by a later one.
		c.Conn.SetWriteDeadline(deadline)
		c.mu.Unlock()
		_, err := c.Conn.Write(batch)
		c.mu.Lock()
		// A batch buffer larger than MaxPending (a bigger message,
		// written alone) is not kept for the next batch.
		if cap(batch) <= MaxPending {
			c.spare = batch[:0]
		} else {
			c.spare = nil
		}
		if err != nil && c.err == nil {
			c.err = err
			// What was dropped leaves a gap, perhaps a truncated
			// operation, in the stream: end the connection, so that its
			// reads fail too and its user (nats.go's read loop)
			// reconnects at once, as nats.go does itself after a partial
			// write.
			c.Conn.Close()
		}
		c.room.Broadcast()
		c.mu.Unlock()
	}
}

// SetWriteDeadline does nothing: a Write does not wait for the
// connection, and the writer bounds its own writes by the timeout.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only (see SetWriteDeadline).
func (c *Conn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// Close sends what is pending, within CloseGrace, and closes the
// connection. Writes made once it has begun fail with net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closing = true
	c.room.Broadcast() // a Write waiting for room fails now
	c.closeBy = time.Now().Add(CloseGrace)
	// A write in progress ends by closeBy too.
	c.Conn.SetWriteDeadline(c.closeBy)
	for c.busy {
		c.room.Wait()
	}
	failed := c.err != nil // the writer closed the connection
	if !failed {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	if failed {
		return nil
	}
	return c.Conn.Close()
}

// Dialer dials TCP connections, each wrapped in a Conn: a
// nats.CustomDialer.
type Dialer struct {
	Timeout      time.Duration // bounds the dial when Net has no Timeout (0: none)
	WriteTimeout time.Duration // bounds each write (0: none)
	// Net dials (nil: a net.Dialer), as nats.go's Dialer option would:
	// its LocalAddr, KeepAlive, Control, MPTCP and the like are kept.
	Net *net.Dialer
	// Resolve makes Dial look the host's name up itself and dial its
	// addresses in turn, in random order unless InOrder, each within the
	// dial's timeout divided by their number, as nats.go does with its
	// own dialer: a dead address of a name several brokers share costs a
	// connection its share of the timeout, not all of it. nats.go hands
	// a custom dialer the name only with nats.SkipHostLookup; without
	// it, each address in turn, each with the whole timeout.
	Resolve, InOrder bool
}

// Dial implements nats.CustomDialer.
func (d Dialer) Dial(network, address string) (net.Conn, error) {
	var nd net.Dialer
	if d.Net != nil {
		nd = *d.Net
	}
	if nd.Timeout == 0 {
		nd.Timeout = d.Timeout
	}
	addrs := []string{address}
	if d.Resolve {
		addrs = d.resolve(address)
		nd.Timeout /= time.Duration(len(addrs))
	}
	var err error
	for _, a := range addrs {
		var c net.Conn
		if c, err = nd.Dial(network, a); err == nil {
			return New(c, d.WriteTimeout), nil
		}
	}
	return nil, err
}

// resolve returns the addresses address's host name resolves to, with
// its port, shuffled unless InOrder; address itself when its host is an
// IP address or does not resolve (as nats.go's createConn).
func (d Dialer) resolve(address string) []string {
	host, port, err := net.SplitHostPort(address)
	if err != nil || net.ParseIP(host) != nil {
		return []string{address}
	}
	ips, _ := net.LookupHost(host)
	if len(ips) == 0 {
		return []string{address}
	}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = net.JoinHostPort(ip, port)
	}
	if !d.InOrder {
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	}
	return addrs
}
