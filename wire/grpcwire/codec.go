package grpcwire

import (
	"fmt"

	"google.golang.org/grpc/encoding"

	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// RawFrame is a gRPC message as its serialized bytes. With [RawCodec] it lets
// the mesh carry messages of any service without their generated code.
type RawFrame []byte

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
// without copying them.
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
	default:
		return nil, fmt.Errorf("wire: RawCodec cannot marshal %T, want RawFrame", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal copies data into a *RawFrame or *[]byte. It copies because gRPC
// frees data when Unmarshal returns.
func (RawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch v := v.(type) {
	case *RawFrame:
		*v = data.Materialize()
	case *[]byte:
		*v = data.Materialize()
	default:
		return fmt.Errorf("wire: RawCodec cannot unmarshal into %T, want *RawFrame", v)
	}
	return nil
}

// Name is "proto", the content-subtype peers expect.
func (RawCodec) Name() string { return grpcproto.Name }
