package replymux

import (
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

// maxQueued and maxQueuedBytes bound the messages an Inbox holds before
// [Inbox.Listen]: past them, messages are dropped, which the stream
// protocol's sequence numbers tell its reader.
const (
	maxQueued      = 1024
	maxQueuedBytes = 4 << 20
)

// Inbox receives the many messages of one subject of a Mux: a stream's
// frames. Its messages are handed, in the order they arrived, to the
// function given to Listen, on the Mux's dispatch goroutine (queued until
// then); that function must not block. When the Mux's connection closes or
// the Mux is closed, it is called once more with a nil message and the
// reason. Close unregisters the inbox; Close is safe more than once and
// from any goroutine.
type Inbox struct {
	x       *Mux
	subject string

	mu     sync.Mutex
	fn     func(*nats.Msg, error)
	queue  []*nats.Msg
	queued int   // bytes of data in queue
	err    error // the Mux's failure, when it came before Listen
	failed bool
}

// Listen registers a new inbox under a new subject in the pair inbox of
// the Mux's owner and peer (the same form as a reply subject, so that only
// peer may publish to it), its messages handed to fn.
func (x *Mux) Listen(peer string, fn func(*nats.Msg, error)) (*Inbox, error) {
	if !validToken(peer) {
		return nil, fmt.Errorf("%w: %q", ErrBadPeer, peer)
	}
	in := &Inbox{x: x, subject: x.replySubject(peer), fn: fn}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, x.closeErr
	}
	x.inboxes[in.subject] = in
	return in, nil
}

// Subject is the subject the inbox receives on.
func (in *Inbox) Subject() string { return in.subject }

// Listen hands the queued messages, then each one as it arrives, to fn.
// It is called once, on an inbox from [Mux.Call].
func (in *Inbox) Listen(fn func(*nats.Msg, error)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.fn = fn
	for _, m := range in.queue {
		fn(m, nil)
	}
	in.queue, in.queued = nil, 0
	if in.failed {
		fn(nil, in.err)
	}
}

// deliver hands m (or, for a nil m, the failure err) to the inbox.
func (in *Inbox) deliver(m *nats.Msg, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.failed {
		return
	}
	if m == nil {
		in.failed, in.err = true, err
	}
	if in.fn == nil {
		if m != nil && len(in.queue) < maxQueued && in.queued+len(m.Data) <= maxQueuedBytes {
			in.queue = append(in.queue, m)
			in.queued += len(m.Data)
		}
		return
	}
	in.fn(m, err)
}

// Close unregisters the inbox: no message is handed to it from then on
// (one being handed over as Close is called may still arrive).
func (in *Inbox) Close() {
	x := in.x
	x.mu.Lock()
	if x.inboxes[in.subject] == in {
		delete(x.inboxes, in.subject)
	}
	x.mu.Unlock()
}
