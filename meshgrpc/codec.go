package meshgrpc

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
)

// protoCodec is gRPC's registered proto codec, used by [GRPCClient] and
// [GRPCServer] to (un)marshal the generated messages.
func protoCodec() encoding.CodecV2 {
	return encoding.GetCodecV2(grpcproto.Name)
}
