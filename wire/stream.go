package wire

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// The stream protocol: how a call whose body, in either direction, is a
// stream crosses NATS (docs/wire.md, "Streams"). A call is a request
// message as for a unary call, with HeaderStream; every later message of
// the call, both ways, is a frame: a message with HeaderFrame naming its
// kind and HeaderSeq numbering it.
const (
	// HeaderStream, on a request, says the caller can take a streamed
	// answer: its value is the credit (bytes of body) the caller grants
	// the answer before it grants more. A request without it is answered
	// in one message, as a unary call.
	HeaderStream = "Mesh-Stream"
	// HeaderStreamBody, on a request, says its body continues after the
	// request message in data frames (its value is "more", the only one):
	// the callee answers at once with an accept frame.
	HeaderStreamBody = "Mesh-Stream-Body"
	// HeaderStreamDeadline, on a request whose HeaderTimeout is a default
	// the caller did not choose, says what that default bounds: "head",
	// the time until the answer's head, not the whole stream; "none",
	// nothing (a gRPC streaming call, whose head may wait for its first
	// message as long as it likes: its stream is bounded by the idle
	// timeout and the caller's cancel).
	HeaderStreamDeadline = "Mesh-Stream-Deadline"
	// HeaderFrame names a frame's kind (the Frame* values).
	HeaderFrame = "Mesh-Frame"
	// HeaderSeq numbers the frames of one direction of a stream: 1, 2, 3,
	// ... A gap is a lost message and ends the stream.
	HeaderSeq = "Mesh-Seq"
	// HeaderCredit grants the peer that many more bytes of body.
	HeaderCredit = "Mesh-Credit"
	// HeaderStreamInbox, on an accept or head frame, is the subject the
	// caller sends its frames to: the callee instance's pair inbox.
	HeaderStreamInbox = "Mesh-Stream-Inbox"
	// HeaderIdle, on a request, is the idle timeout the caller keeps (a
	// Go duration): each side sends a ping when it has sent nothing for a
	// third of it, and ends the stream when it has heard nothing for it.
	HeaderIdle = "Mesh-Idle"
	// HeaderConfirm, on a request, asks the callee to start the call only
	// once its caller confirms it: the callee accepts at once (an accept
	// frame) and runs nothing until the caller's start frame arrives. Its
	// value is how long the caller waits for the accept (a Go duration,
	// MinTakeWithin to MaxTakeWithin): a caller that hears nothing in that
	// time sends the call again, to the queue group, and never a start to
	// the instance that was silent, so a call that may not run twice
	// (one that is not idempotent) runs at most once whichever instance
	// froze or died with it.
	HeaderConfirm = "Mesh-Confirm"
)

// Frame kinds (HeaderFrame values).
const (
	// FrameAccept (callee to caller) opens a request body stream: it
	// names the callee's inbox and grants the request body's credit.
	FrameAccept = "accept"
	// FrameHead (callee to caller) is a streamed answer's head: the
	// answer's header as a unary reply's, its data the body's first piece.
	FrameHead = "head"
	// FrameReply (callee to caller) is a whole answer after an accept:
	// header and body as a unary reply; it ends the call.
	FrameReply = "reply"
	// FrameData carries a piece of body.
	FrameData = "data"
	// FrameEnd ends one direction's body: its header is the trailer
	// (trailers behind Mesh-Trailer-, a gRPC status); it has no data.
	FrameEnd = "end"
	// FrameCredit grants HeaderCredit more bytes.
	FrameCredit = "credit"
	// FramePing keeps an idle stream alive.
	FramePing = "ping"
	// FrameCancel ends the whole call at once, both directions: its
	// header carries the reason as a mesh error (HeaderError).
	FrameCancel = "cancel"
	// FrameStart (caller to callee) confirms a call made with
	// HeaderConfirm, after its accept: the callee may start it now.
	FrameStart = "start"
)

// Stream defaults.
const (
	// DefaultStreamWindow is the credit a receiver grants at first, and
	// the most body it holds: 1 MiB.
	DefaultStreamWindow = 1 << 20
	// DefaultStreamChunk is the largest piece of body one frame carries
	// (within the broker's max_payload).
	DefaultStreamChunk = 128 << 10
	// DefaultStreamIdle is how long a stream may hear nothing from its
	// peer, pings included, before it ends with a timeout.
	DefaultStreamIdle = 10 * time.Second
	// StreamOpenAfter is how long a callee waits for its service's answer
	// before it opens the call with an accept frame, so that its caller
	// can cancel it and the two sides' keep-alives run: a quick call
	// costs no frame.
	StreamOpenAfter = 100 * time.Millisecond
	// DefaultTakeWithin is how long a caller waits for a call's first
	// sign of life (its answer; the accept a callee sends at once for a
	// call made with HeaderConfirm, or once it has worked on any other
	// for StreamOpenAfter) before it takes the instance that got it for
	// gone or frozen and sends the call again, to the queue group: the
	// call was confirmed to no one (HeaderConfirm), or it is idempotent.
	DefaultTakeWithin = 300 * time.Millisecond
	// MinTakeWithin and MaxTakeWithin bound the wait a caller may choose:
	// a live callee's accept must have time to come (StreamOpenAfter,
	// with room for a busy host).
	MinTakeWithin = 200 * time.Millisecond
	MaxTakeWithin = 10 * time.Second
	// MaxStreamWindow bounds the credit a peer may announce.
	MaxStreamWindow = 64 << 20
	// MinStreamIdle and MaxStreamIdle bound the idle timeout a peer may
	// ask for.
	MinStreamIdle = 100 * time.Millisecond
	MaxStreamIdle = 10 * time.Minute
)

// FrameOf is m's frame kind, "" for a message that is no frame.
func FrameOf(h nats.Header) string {
	if h == nil {
		return ""
	}
	if v := h[HeaderFrame]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// FrameSeq is a frame's sequence number; 0 for none or a bad one.
func FrameSeq(h nats.Header) uint64 {
	v := h.Get(HeaderSeq)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// Credit reads a credit header (HeaderCredit, HeaderStream): a positive
// count of bytes up to MaxStreamWindow; ok is false for anything else.
func Credit(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > MaxStreamWindow {
		return 0, false
	}
	return n, true
}

// StreamIdle reads HeaderIdle: the caller's idle timeout within
// [MinStreamIdle, MaxStreamIdle], or def when absent.
func StreamIdle(h nats.Header, def time.Duration) (time.Duration, error) {
	v := h.Get(HeaderIdle)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < MinStreamIdle || d > MaxStreamIdle {
		return 0, Errorf(KindBadRequest, "bad %s %.32q: a duration from %v to %v", HeaderIdle, v, MinStreamIdle, MaxStreamIdle)
	}
	return d, nil
}

// TakeWithin reads HeaderConfirm: the caller's wait for the accept, ok
// false when the request has none.
func TakeWithin(h nats.Header) (d time.Duration, ok bool, err error) {
	v := h.Get(HeaderConfirm)
	if v == "" {
		return 0, false, nil
	}
	d, err = time.ParseDuration(v)
	if err != nil || d < MinTakeWithin || d > MaxTakeWithin {
		return 0, false, Errorf(KindBadRequest, "bad %s %.32q: a duration from %v to %v", HeaderConfirm, v, MinTakeWithin, MaxTakeWithin)
	}
	return d, true, nil
}
