package pipeline

import (
	"context"
	"errors"
	"io"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// Body is the body of a call or of its reply: whole ([Body.Bytes]), or
// arriving over time ([Body.Stream]). The zero Body is an empty whole body.
type Body struct {
	// Bytes is a whole body, all of it at once, as the wire format encodes
	// it (a unary message's payload). Unused when Stream is set.
	Bytes []byte
	// Stream, when set, is the body as it arrives, piece by piece.
	Stream Stream
	// Replay, for a request's Stream, returns a new Stream that reads the
	// body again from its start, for another attempt of the call (a
	// retry, a hedge, a mirror): net/http's Request.GetBody. Nil means
	// the body can be read once only, and the resilience policies send
	// the call once (no retry, no hedge) and routing mirrors none of it.
	// A whole body is always replayable: its bytes are never written.
	Replay func() (Stream, error)
}

// Streamed reports whether the body arrives over time.
func (b Body) Streamed() bool { return b.Stream != nil }

// Replayable reports whether the body can be read again for another
// attempt: a whole body, or a stream with Replay.
func (b Body) Replayable() bool { return b.Stream == nil || b.Replay != nil }

// Stream is a body that arrives over time: gRPC's messages of a stream,
// an HTTP body in pieces. It is the data phase of Envoy's headers, data
// and trailers: the header travels beside it (a Call's Header, a Reply's
// Header), the trailer after it.
//
// One reader reads a Stream (Next is not safe for concurrent use); Close
// may be called from another goroutine, and more than once.
type Stream interface {
	// Next returns the next piece of the body, or io.EOF after the last
	// one (never a piece with an error). A piece is the reader's until
	// its next call. Another error means the stream failed: its sender
	// went away, its deadline (ctx's) passed.
	Next(ctx context.Context) ([]byte, error)
	// Trailer is what came after the body, as the wire format encodes it
	// in a unary message's header: trailers behind "Mesh-Trailer-", and a
	// gRPC stream's status (Mesh-Grpc-Status, Mesh-Grpc-Message). Valid
	// once Next has returned io.EOF; nil for none.
	Trailer() nats.Header
	// Close ends the stream: before io.EOF it cancels it (its sender
	// stops), after, it releases it. Closing twice does nothing.
	Close() error
}

// readStream reads s to its end, bounded by limit bytes, and closes it:
// the body and its trailer. Past limit it fails with too-large; a stream
// that fails fails with its error, as a mesh error.
//
// A call to a plain NATS subject (a NATS-native responder takes one
// message) sends its streamed body so.
func readStream(ctx context.Context, s Stream, limit int64) ([]byte, nats.Header, error) {
	return readStreamAs(ctx, s, limit, nil)
}

// readStreamAs is readStream whose error past limit is over's of the
// too-large error (nil: too-large itself); a streamed reply's stream ends
// with that error, so its OnEnd observers are told what the caller is
// answered, not that the stream was given up.
func readStreamAs(ctx context.Context, s Stream, limit int64, over func(*wire.Error) error) ([]byte, nats.Header, error) {
	defer s.Close()
	var body []byte
	for {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return body, s.Trailer(), nil
		}
		if err != nil {
			return nil, nil, wire.FromError(err)
		}
		if int64(len(body))+int64(len(b)) > limit {
			var err error = &wire.Error{Kind: wire.KindTooLarge,
				Message: "a streamed body read whole exceeds max_payload (natsmesh broker --max-payload raises it)"}
			if over != nil {
				err = over(err.(*wire.Error))
			}
			if e, ok := s.(*ending); ok {
				e.finish(err)
			}
			return nil, nil, err
		}
		body = append(body, b...)
	}
}

// withTrailer is header with the trailer's fields added, a new map when
// there are any: a streamed message read whole, as one message carries it.
func withTrailer(header, trailer nats.Header) nats.Header {
	if len(trailer) == 0 {
		return header
	}
	h := make(nats.Header, len(header)+len(trailer))
	for k, vs := range header {
		h[k] = vs
	}
	for k, vs := range trailer {
		h[k] = vs
	}
	return h
}
