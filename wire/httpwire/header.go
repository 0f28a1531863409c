package httpwire

import (
	"context"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 section 7.6.1); they never cross the mesh.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopByHop(name string, connTokens []string) bool {
	for _, t := range connTokens {
		if strings.EqualFold(name, t) {
			return true
		}
	}
	if name == "" {
		return false
	}
	// Every fixed hop-by-hop name starts with one of these letters; most
	// headers do not, and skip the loop.
	switch name[0] | 0x20 {
	case 'c', 'k', 'p', 't', 'u':
	default:
		return false
	}
	for _, h := range hopByHop {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return hasPrefixFold(name, "proxy-")
}

// connectionTokens lists the header names that the values of a Connection
// header declare hop-by-hop.
func connectionTokens(connection []string) []string {
	var out []string
	for _, v := range connection {
		for _, t := range strings.Split(v, ",") {
			if t = textproto.TrimString(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func statusOf(h nats.Header) (int, bool) {
	v := h.Get(wire.HeaderStatus)
	if v == "" {
		return 0, false
	}
	s, err := strconv.Atoi(v)
	if err != nil || s < 100 || s > 999 {
		return 0, false
	}
	return s, true
}

// withRequestTimeout is ctx with a request's propagated timeout as its
// deadline, or merely cancelable when the request carries none.
func withRequestTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
