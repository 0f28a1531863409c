package httpwire

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/natsmesh/natsmesh/wire"
)

// What no server should receive, refused at the encoder every HTTP entry
// point uses and at the decoder every inbound call goes through, whatever
// client sent it (issue 19):
//   - TRACE: its answer echoes the request, cookies and Authorization
//     included, to whatever script made it (cross-site tracing); no mesh
//     service needs it;
//   - a `#` in the query: a fragment is the client's, never part of a
//     request target (RFC 9112 section 3.2);
//   - a Host that names no host: see validHost.

// maxHostLen is the longest Host accepted: a DNS name (253) and a port.
const maxHostLen = 253 + len(":65535")

// checkRequest refuses what no server should receive: method TRACE, a
// query with a fragment, a Host that is no host[:port].
func checkRequest(method, query, host string) error {
	if method == http.MethodTrace {
		return &wire.Error{Kind: wire.KindBadRequest, Message: "TRACE is not carried: its answer would echo the request's headers, cookies and credentials included"}
	}
	if strings.IndexByte(query, '#') >= 0 {
		return &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %.64q: a fragment (#) is no part of a request", wire.HeaderQuery, query)}
	}
	if host != "" && !validHost(host) {
		return &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %.64q: not a host[:port]", wire.HeaderHost, host)}
	}
	return nil
}

// validHost reports whether h is host[:port] as a request may name it:
// a DNS name (labels of letters, digits, '-' and '_', dot-separated, no
// empty label but a trailing dot) or an IP literal (IPv4, or IPv6 in
// brackets), and an optional decimal port up to 65535; at most
// maxHostLen bytes. No wildcard, no second colon, no user info.
func validHost(h string) bool {
	if h == "" || len(h) > maxHostLen {
		return false
	}
	name, port := h, ""
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		name, port = h[1:end], h[end+1:]
		if !validIPv6(name) {
			return false
		}
	} else {
		if i := strings.IndexByte(h, ':'); i >= 0 {
			name, port = h[:i], h[i:]
		}
		if !validName(name) {
			return false
		}
	}
	if port != "" {
		p, ok := strings.CutPrefix(port, ":")
		if !ok || p == "" || len(p) > 5 {
			return false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 || strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return false
		}
	}
	return true
}

// validName reports whether s is a DNS name or an IPv4 address: labels
// of [A-Za-z0-9_-], 1 to 63 bytes, dot-separated, a trailing dot allowed.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validIPv6 reports whether s is the inside of an IPv6 literal's
// brackets: hex digits, colons and dots (an embedded IPv4), and a zone
// after %.
func validIPv6(s string) bool {
	addr, _, _ := strings.Cut(s, "%25")
	if addr == "" || strings.Count(addr, ":") < 2 {
		return false
	}
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}
