package wire

import (
	"fmt"
	"net"
	"strings"
)

// DefaultDomain is the mesh domain every agent accepts after a service
// name ("orders.mesh", "v2.orders.mesh") besides the ones it is given.
const DefaultDomain = "mesh"

// ParseHost reads the destination of an outbound call from the host a
// client addressed: "orders" (any instance of orders) or "v2.orders" (the
// v2 subset of orders, DNS-like: the subset is the more specific label),
// each optionally followed by one of domains ("orders.mesh",
// "v2.orders.svc.cluster.local" with the domain "svc.cluster.local") or
// [DefaultDomain]. A port and a trailing dot are ignored and the host is
// read case-insensitively, as DNS names are.
//
// The longest matching domain is stripped: a domain that ends in a
// namespace ("default.svc.cluster.local") keeps Kubernetes-style names
// ("orders.default.svc.cluster.local") from reading as a subset. The error is a *Error of KindNoRoute that says which forms
// are accepted.
func ParseHost(host string, domains []string) (service, subset string, err error) {
	orig := host
	// Without a colon there is no port (and SplitHostPort would make an
	// error to say so, on every call).
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	// The longest domain that matches wins, so "default.svc.cluster.local"
	// takes "orders.default.svc.cluster.local" before "svc.cluster.local"
	// could read "orders" as a subset of "default".
	name, longest := host, 0
	for i := 0; i <= len(domains); i++ {
		d := DefaultDomain
		if i < len(domains) {
			d = strings.Trim(domains[i], ".")
		}
		// Domains are given in lower case (as config); the host is lowered.
		if n := len(d); n > longest && len(host) > n+1 && host[len(host)-n-1] == '.' && strings.EqualFold(host[len(host)-n:], d) {
			name, longest = host[:len(host)-n-1], n
		}
	}
	first, rest, dotted := strings.Cut(name, ".")
	if dotted {
		subset, service = first, rest
	} else {
		service = name
	}
	if ValidateName("service", service) != nil || (dotted && ValidateName("subset", subset) != nil) {
		return "", "", &Error{Kind: KindNoRoute, Message: fmt.Sprintf(
			"%.64q is not a mesh service name: want SERVICE or SUBSET.SERVICE ([a-z0-9-] labels), optionally followed by .%s", orig, strings.Join(append(domains, DefaultDomain), " or ."))}
	}
	return service, subset, nil
}
