package grpcwire

import (
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// encodeGRPCAt is EncodeRequest on subject.
func encodeGRPCAt(subject string, req *Request, lim wire.Limits) (*nats.Msg, error) {
	m, err := EncodeRequest(req, lim)
	if err != nil {
		return nil, err
	}
	m.Subject = subject
	return m, nil
}
