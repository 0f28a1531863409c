package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/natsconn"
)

// ConnectConfig says how a service (an agent, or the edge gateway under its
// caller name: bridge.ConnectConfig is the same type) connects to NATS.
// The zero value connects to nats://127.0.0.1:4222 without authentication.
// Its fields:
//
//   - URL: one or more NATS server URLs, comma-separated. Default
//     nats.DefaultURL.
//   - Name: the connection's name, shown by the broker's monitoring.
//     Default "natsmesh:<service>".
//   - Creds: a user credentials file (JWT and NKey seed) for operator-mode
//     NATS; NKey: an NKey seed file. At most one.
//   - TLSCA verifies the server's certificate (default: the system's roots
//     for tls:// URLs); TLSCert and TLSKey are a client certificate for
//     servers that verify clients.
//   - Timeout bounds the wait for the first connection, which is retried
//     until then so a sidecar may start before its broker. Default 30s.
//     Once connected, the connection reconnects forever.
//   - Logger receives disconnections and reconnections. Default
//     slog.Default().
//   - Options are further nats.go options, applied last.
type ConnectConfig = natsconn.Config

// Connect dials NATS for service, with replies delivered under the
// service's inbox prefix ([wire.InboxPrefix]), the one the mesh's
// permissions let only that service read. It waits for the first
// connection (retrying until cfg.Timeout or ctx ends, then returning
// ctx.Err()) and fails at once on credentials the server refuses. Settings
// that can never connect (a bad name, a missing credentials file) wrap
// ErrConfig.
func Connect(ctx context.Context, service string, cfg ConnectConfig) (*nats.Conn, error) {
	nc, err := natsconn.Connect(ctx, service, cfg)
	if err != nil {
		return nil, connectError(err)
	}
	return nc, nil
}

// connectError presents an error of package natsconn as the agent's.
func connectError(err error) error {
	if ce := (*natsconn.ConfigError)(nil); errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("agent: %w", err)
}

// checkInboxPrefix refuses a connection whose replies would not arrive
// under service's inbox prefix: with the mesh's permissions its requests
// would never get an answer, and without them anyone could read its
// replies.
func checkInboxPrefix(nc *nats.Conn, service string) error {
	if err := natsconn.CheckInboxPrefix(nc, service); err != nil {
		return connectError(err)
	}
	return nil
}
