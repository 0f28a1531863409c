package grpcwire

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/grpc/encoding"

	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// RawFrame is a gRPC message as its serialized bytes. With [RawCodec] it lets
// the mesh carry messages of any service without their generated code.
type RawFrame []byte

// Framed is a gRPC message as its bytes behind its length prefix
// ([AppendMessage]): what a stream's body carries. With [RawCodec], a
// message received into a *Framed is framed as it is copied out of gRPC's
// buffers, and a Framed is sent as the message behind its prefix.
type Framed []byte

// RawCodec is a pass-through gRPC codec: it marshals a RawFrame (or []byte)
// as its bytes and unmarshals into a *RawFrame (or *[]byte) by copying them.
// Use it with grpc.ForceServerCodecV2 on a server and grpc.ForceCodecV2 on a
// call. Its name is "proto", so peers see the usual content type
// (application/grpc+proto) and treat the bytes as the protobuf messages they
// are. It is not registered globally: registering it would replace the
// proto codec of the whole process.
type RawCodec struct{}

var _ encoding.CodecV2 = RawCodec{}

// Marshal returns the bytes of a RawFrame, *RawFrame, []byte or *[]byte,
// or the message of a Framed, without copying them.
func (RawCodec) Marshal(v any) (mem.BufferSlice, error) {
	var b []byte
	switch v := v.(type) {
	case RawFrame:
		b = v
	case *RawFrame:
		b = *v
	case []byte:
		b = v
	case *[]byte:
		b = *v
	case Framed:
		if len(v) < MessagePrefixLen {
			return nil, fmt.Errorf("wire: RawCodec: a Framed of %d bytes has no prefix", len(v))
		}
		b = v[MessagePrefixLen:]
	default:
		return nil, fmt.Errorf("wire: RawCodec cannot marshal %T, want RawFrame", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal copies data into a *RawFrame or *[]byte, or, behind its
// prefix, a *Framed. It copies because gRPC
// frees data when Unmarshal returns.
func (RawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch v := v.(type) {
	case *RawFrame:
		*v = data.Materialize()
	case *[]byte:
		*v = data.Materialize()
	case *Framed:
		b := make([]byte, MessagePrefixLen, MessagePrefixLen+data.Len())
		binary.BigEndian.PutUint32(b[1:], uint32(data.Len()))
		for _, buf := range data {
			b = append(b, buf.ReadOnlyData()...)
		}
		*v = b
	default:
		return fmt.Errorf("wire: RawCodec cannot unmarshal into %T, want *RawFrame", v)
	}
	return nil
}

// Name is "proto", the content-subtype peers expect.
func (RawCodec) Name() string { return grpcproto.Name }
