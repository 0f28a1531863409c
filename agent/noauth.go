package agent

import (
	"log/slog"
	"net/url"

	"github.com/nats-io/nats.go"
)

// anonymous reports whether nc reaches its server without an identity of
// its own: the server requires no authentication (its INFO says so), or
// the connection presents no credentials of any kind (no NKey, JWT, user,
// token or client certificate), so that it is the server's no-auth user.
// Before the first connection only the credentials are known.
func anonymous(nc *nats.Conn) bool {
	if nc.IsConnected() && !nc.AuthRequired() {
		return true
	}
	o := nc.Opts
	if o.Nkey != "" || o.UserJWT != nil || o.User != "" || o.UserInfo != nil || o.Token != "" || o.TokenHandler != nil || o.TLSCertCB != nil {
		return false
	}
	if o.TLSConfig != nil && (len(o.TLSConfig.Certificates) > 0 || o.TLSConfig.GetClientCertificate != nil) {
		return false
	}
	for _, s := range append([]string{o.Url}, o.Servers...) {
		if u, err := url.Parse(s); err == nil && u.User != nil {
			return false
		}
	}
	return true
}

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
