package natsconn

import (
	"net/url"

	"github.com/nats-io/nats.go"
)

// Authenticates reports whether nc reaches its server with an identity of
// its own: the server requires authentication (its INFO says so, once
// connected) and the connection presents credentials of some kind (an
// NKey, a JWT, a user, a token or a client certificate). Before the first
// connection only the credentials are known. An agent or gateway whose
// connection authenticates never serves with the built-in allow-all policy
// (docs/security.md, "Fail closed"); one on an open broker, the laptop's,
// may.
func Authenticates(nc *nats.Conn) bool {
	if nc.IsConnected() && !nc.AuthRequired() {
		return false
	}
	o := nc.Opts
	if o.Nkey != "" || o.UserJWT != nil || o.User != "" || o.UserInfo != nil || o.Token != "" || o.TokenHandler != nil || o.TLSCertCB != nil {
		return true
	}
	if o.TLSConfig != nil && (len(o.TLSConfig.Certificates) > 0 || o.TLSConfig.GetClientCertificate != nil) {
		return true
	}
	for _, s := range append([]string{o.Url}, o.Servers...) {
		if u, err := url.Parse(s); err == nil && u.User != nil {
			return true
		}
	}
	return false
}
