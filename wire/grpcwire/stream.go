package grpcwire

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/wire"
)

// gRPC streams. A call of a streaming method (client-, server- or
// bidirectional streaming) is marked with [HeaderGRPCStream]; its body, in
// both directions, is a sequence of gRPC length-prefixed messages (one
// flag byte, 0 for uncompressed, a 4-byte big-endian length, the message),
// as on the gRPC HTTP/2 wire, whether it crosses the mesh whole or as a
// stream. A streamed reply's head carries the header metadata
// ([StreamHead]) and its trailer the status and trailer metadata
// ([StreamTrailer]): the two together are a unary reply's header, so a
// streamed reply read whole is decoded as one ([DecodeResponse]), its
// payload the framed messages.
const (
	// HeaderGRPCStream, set to "1" on a request, marks a call of a
	// streaming method.
	HeaderGRPCStream = "Mesh-Grpc-Stream"

	// MessagePrefixLen is the length of the prefix of a gRPC
	// length-prefixed message: its flag byte and its 4-byte length.
	MessagePrefixLen = 5

	// DefaultMaxMessage bounds a message of a stream read by a
	// [MessageReader] whose Max is zero: gRPC's default bound of a
	// received message (grpc.MaxRecvMsgSize).
	DefaultMaxMessage = 4 << 20
)

// AppendMessage appends msg to dst as a gRPC length-prefixed message,
// uncompressed.
func AppendMessage(dst, msg []byte) []byte {
	dst = append(dst, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(msg)))
	return append(dst, msg...)
}

// MessageReader reads gRPC length-prefixed messages out of a body that
// arrives in pieces of any size: a message may span pieces, a piece hold
// several (the mesh's byte streams keep no piece boundaries). Feed it a
// piece, then call Next until it reports none left, then feed the next.
// The zero value is ready to use.
type MessageReader struct {
	// Max bounds a message's length; zero means DefaultMaxMessage.
	Max int

	piece  []byte
	prefix [MessagePrefixLen]byte
	nPre   int    // prefix bytes read of the current message
	size   int    // the current message's length, once its prefix is read
	msg    []byte // its bytes read so far: grown as they arrive, never
	// to the length a prefix announces before its bytes come (a peer
	// would have it allocate Max for five bytes sent)
}

// Feed gives r the next piece of the body. r reads it in place until
// Next has reported that none of it is left.
func (r *MessageReader) Feed(piece []byte) { r.piece = piece }

// Next returns the next whole message of what r was fed, a slice of its
// own (it copies out of the pieces); ok is false when more pieces are
// needed. A message that is compressed (gRPC's flag byte set: the mesh
// carries messages as the service wrote them, uncompressed) fails with
// KindBadRequest, one longer than Max with KindTooLarge; r is of no more
// use then.
func (r *MessageReader) Next() (msg []byte, ok bool, err error) {
	for {
		if r.nPre < MessagePrefixLen {
			n := copy(r.prefix[r.nPre:], r.piece)
			r.nPre += n
			r.piece = r.piece[n:]
			if r.nPre < MessagePrefixLen {
				return nil, false, nil
			}
			if r.prefix[0] != 0 {
				return nil, false, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("gRPC message with flags %#x: the mesh carries uncompressed messages only", r.prefix[0])}
			}
			size := binary.BigEndian.Uint32(r.prefix[1:])
			max := r.Max
			if max <= 0 {
				max = DefaultMaxMessage
			}
			if uint64(size) > uint64(max) {
				return nil, false, &wire.Error{Kind: wire.KindTooLarge, Message: fmt.Sprintf("gRPC message of %d bytes, more than the limit of %d", size, max)}
			}
			r.size, r.msg = int(size), nil
			if len(r.piece) >= r.size {
				// The whole message is here: one allocation of its size.
				r.msg = make([]byte, 0, r.size)
			}
		}
		n := min(r.size-len(r.msg), len(r.piece))
		r.msg = append(r.msg, r.piece[:n]...)
		r.piece = r.piece[n:]
		if len(r.msg) < r.size {
			return nil, false, nil
		}
		msg := r.msg
		if msg == nil {
			msg = []byte{}
		}
		r.msg, r.nPre, r.size = nil, 0, 0
		return msg, true, nil
	}
}

// Partial reports whether a message has begun and not ended: at the end
// of the body, a truncated one.
func (r *MessageReader) Partial() bool { return r.nPre > 0 || len(r.piece) > 0 }

// StreamHead is the header of a streamed reply's head: the service's
// header metadata, copied as in [EncodeRequest], and no status (its
// trailer has it). It fails past lim's header bounds with
// KindHeadersTooLarge, and with KindBadRequest for metadata gRPC could
// not send.
func StreamHead(header metadata.MD, lim wire.Limits) (nats.Header, error) {
	h := make(nats.Header, len(header))
	n, size, err := putMetadata(h, header, "")
	if err != nil {
		return nil, err
	}
	if err := lim.Check(&nats.Msg{Header: h}, n, size); err != nil {
		return nil, err
	}
	return h, nil
}

// StreamTrailer is the trailer of a streamed reply: the final status
// (Mesh-Grpc-Status, always, and Mesh-Grpc-Message and Mesh-Grpc-Details
// as in [ResponseMsg]; nil st is OK) and the trailer metadata behind
// "Mesh-Trailer-". [DecodeResponse] reads it (its Status and Trailer).
// Past lim's header bounds it fails as ResponseMsg does.
func StreamTrailer(st *status.Status, trailer metadata.MD, lim wire.Limits) (nats.Header, error) {
	m, err := ResponseMsg(&Response{Trailer: trailer, Status: st}, lim)
	if err != nil {
		return nil, err
	}
	return m.Header, nil
}

// streamMarker is HeaderGRPCStream's one value.
const streamMarker = "1"

// readStreamMarker reads HeaderGRPCStream: absent, or "1".
func readStreamMarker(h nats.Header) (bool, error) {
	vs, ok := h[HeaderGRPCStream]
	if !ok {
		return false, nil
	}
	if len(vs) != 1 || vs[0] != streamMarker {
		v := ""
		if len(vs) > 0 {
			v = vs[0]
		}
		return false, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %s: want %q", HeaderGRPCStream, strconv.QuoteToASCII(truncate(v, 16)), streamMarker)}
	}
	return true, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
