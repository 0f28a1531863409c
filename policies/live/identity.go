package live

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// meshID is the mesh a cache file was kept from, as the connection that
// kept it knew it before asking the store: whom it authenticated as and
// which servers it was told to use. A watch uses a kept file only if its
// own connection has the same credentials and, when it has none (an open
// broker), the same servers: credentials are made per mesh (accounts
// generate), while one mesh's servers may be reached at several addresses
// (another server of the cluster, a broker moved) with the same ones.
type meshID struct {
	// User is who the connection authenticates as, public parts only:
	// "creds <user public key>", "nkey <public key>", "user <name>",
	// "token <first 12 hex digits of its SHA-256>", "cert <idem of the
	// client certificate>", comma-separated; "" without credentials.
	User string `json:"user"`
	// Servers are the host:port of the URLs the connection was given,
	// sorted ("in-process" for an in-process connection).
	Servers []string `json:"servers"`
}

// connMesh returns the mesh nc was set up for (see meshID).
func connMesh(nc *nats.Conn) meshID {
	o := nc.Opts
	var who, servers []string
	if o.UserJWT != nil {
		id := "creds ?"
		if j, err := o.UserJWT(); err == nil {
			if c, err := jwt.DecodeUserClaims(j); err == nil {
				id = "creds " + c.Subject
			}
		}
		who = append(who, id)
	}
	if o.Nkey != "" {
		who = append(who, "nkey "+o.Nkey)
	}
	if o.User != "" {
		who = append(who, "user "+o.User)
	}
	if o.Token != "" {
		who = append(who, "token "+fingerprint([]byte(o.Token)))
	}
	if o.TokenHandler != nil {
		who = append(who, "token "+fingerprint([]byte(o.TokenHandler())))
	}
	if o.TLSCertCB != nil {
		if c, err := o.TLSCertCB(); err == nil && len(c.Certificate) > 0 {
			who = append(who, "cert "+fingerprint(c.Certificate[0]))
		}
	} else if o.TLSConfig != nil && len(o.TLSConfig.Certificates) > 0 && len(o.TLSConfig.Certificates[0].Certificate) > 0 {
		who = append(who, "cert "+fingerprint(o.TLSConfig.Certificates[0].Certificate[0]))
	}
	urls := o.Servers
	if o.Url != "" {
		urls = append([]string{o.Url}, urls...)
	}
	for _, s := range urls {
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if u.User != nil { // nats://user:password@host, nats://token@host
			if _, ok := u.User.Password(); ok {
				who = append(who, "user "+u.User.Username())
			} else {
				who = append(who, "token "+fingerprint([]byte(u.User.Username())))
			}
		}
		port := u.Port()
		if port == "" {
			port = "4222"
		}
		servers = append(servers, net.JoinHostPort(strings.ToLower(u.Hostname()), port))
	}
	if o.InProcessServer != nil {
		servers = append(servers, "in-process")
	}
	slices.Sort(who)
	slices.Sort(servers)
	return meshID{User: strings.Join(slices.Compact(who), ", "), Servers: slices.Compact(servers)}
}

// fingerprint names a secret or a certificate without revealing it.
func fingerprint(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:6])
}

// differs says why a file kept from mesh k is not for a watch connected
// as m, or "".
func (m meshID) differs(k *meshID) string {
	switch {
	case k == nil:
		return "it names no mesh (kept by an older natsmesh)"
	case k.User != m.User:
		return "it was kept as " + who(k.User) + ", and this watch connects as " + who(m.User)
	case m.User == "" && !slices.Equal(k.Servers, m.Servers):
		return "it was kept from the servers " + strings.Join(k.Servers, ",") + " without credentials, and this watch connects to " + strings.Join(m.Servers, ",")
	}
	return ""
}

func who(user string) string {
	if user == "" {
		return "nobody (no credentials)"
	}
	return user
}
