package securitytest

import (
	"crypto/rand"
	"encoding/hex"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// attackMesh: web and inventory may both call orders; web may call
// inventory. Every attack below is made with one of these keys alone.
const attackMesh = `version: 1
services:
  web: {}
  inventory:
    allow:
      - caller: web
  orders:
    allow:
      - caller: web
      - caller: inventory
`

// rawStream is one side of a stream spoken with a service's key alone,
// over the client's TCP connection, by the frames docs/wire.md
// ("Streams") describes: the attacker's own frames numbered as the
// protocol wants, so the victim takes them.
type rawStream struct {
	t   testing.TB
	c   *client
	out string // where this side's frames go
	mu  sync.Mutex
	seq int
	in  chan *nats.Msg // the peer's frames
	sub *nats.Subscription
}

// token is a random subject token.
func token() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// callStream sends c's call to service with the stream protocol's request
// headers (h adds to or replaces them) and returns the caller's side:
// its frames go to the callee's inbox once openedBy has read it from an
// accept or head frame.
func callStream(t testing.TB, c *client, service, method, path string, h nats.Header) *rawStream {
	t.Helper()
	reply := wire.PairInbox(c.user, service) + "." + token() + ".1-" + token()
	s := &rawStream{t: t, c: c, in: make(chan *nats.Msg, 1<<16)}
	sub, err := c.ChanSubscribe(reply, s.in)
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	s.sub = sub
	t.Cleanup(func() { sub.Unsubscribe() })
	hdr := nats.Header{
		wire.HeaderMethod: {method},
		wire.HeaderPath:   {path},
		wire.HeaderStream: {strconv.Itoa(wire.DefaultStreamWindow)},
	}
	for k, v := range h {
		hdr[k] = v
	}
	subject := wire.Subject{Service: service, Caller: c.user, Proto: wire.ProtoHTTP, Op: method}.String()
	if err := c.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: hdr}); err != nil {
		t.Fatal(err)
	}
	return s
}

// first waits for the callee's first message and, for an accept or head
// frame, takes the callee's inbox from it.
func (s *rawStream) first(wait time.Duration) *nats.Msg {
	s.t.Helper()
	select {
	case m := <-s.in:
		if in := m.Header.Get(wire.HeaderStreamInbox); in != "" {
			s.out = in
		}
		return m
	case <-time.After(wait):
		s.t.Fatalf("%s: no answer within %v", s.c.user, wait)
		return nil
	}
}

// send publishes one frame of kind to the peer, numbered next.
func (s *rawStream) send(kind string, h nats.Header, data []byte) {
	s.t.Helper()
	if err := s.publish(kind, h, data); err != nil {
		s.t.Fatal(err)
	}
}

// publish is send for a goroutine other than the test's, which must not
// call Fatal: it returns the error.
func (s *rawStream) publish(kind string, h nats.Header, data []byte) error {
	if h == nil {
		h = nats.Header{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	h.Set(wire.HeaderFrame, kind)
	h.Set(wire.HeaderSeq, strconv.Itoa(s.seq))
	return s.c.PublishMsg(&nats.Msg{Subject: s.out, Header: h, Data: data})
}

// credits drains the peer's frames and returns the credit they granted
// and whether a cancel came.
func (s *rawStream) credits() (granted int64, cancelled *nats.Msg) {
	for {
		select {
		case m := <-s.in:
			switch wire.FrameOf(m.Header) {
			case wire.FrameCredit:
				n, _ := wire.Credit(m.Header.Get(wire.HeaderCredit))
				granted += n
			case wire.FrameCancel:
				cancelled = m
			}
		default:
			return granted, cancelled
		}
	}
}

// fillUntilStalled sends data within the credit the peer grants until it
// grants none for quiet: its reader has stopped reading. It returns the
// credit left.
func (s *rawStream) fillUntilStalled(credit int64, quiet time.Duration) int64 {
	s.t.Helper()
	chunk := make([]byte, 64<<10)
	last := time.Now()
	for time.Since(last) < quiet {
		g, cancelled := s.credits()
		if cancelled != nil {
			s.t.Fatalf("the victim cancelled while being filled: %v", cancelled.Header)
		}
		if g > 0 {
			credit += g
			last = time.Now()
		}
		if credit < int64(len(chunk)) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		s.send(wire.FrameData, nil, chunk)
		credit -= int64(len(chunk))
	}
	return credit
}

// heap is the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// pad is a header value of n bytes: a frame's header, which no credit
// counts.
func pad(n int) nats.Header {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'p'
	}
	return nats.Header{"X-Pad": {string(b)}}
}
