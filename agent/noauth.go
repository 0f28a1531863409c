package agent

import (
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/natsconn"
)

// anonymous reports whether nc reaches its server without an identity of
// its own (see natsconn.Authenticates): the server requires no
// authentication, or the connection presents no credentials of any kind,
// so that it is the server's no-auth user.
func anonymous(nc *nats.Conn) bool { return !natsconn.Authenticates(nc) }

// warnAnonymous says, once at start, what running without an identity
// allows.
func warnAnonymous(nc *nats.Conn, service string, log *slog.Logger) {
	if !anonymous(nc) {
		return
	}
	log.Warn("agent: connected to NATS without authentication: any client of the broker may call "+service+
		" as any caller, read its calls and replies, join its queue groups and answer in its place; "+
		"generate the mesh's accounts (natsmesh accounts generate) and connect with --nkey or --creds",
		"url", nc.ConnectedUrlRedacted())
}
