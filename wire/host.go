package wire

import (
	"fmt"
	"net"
	"net/netip"
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
//
// ParseHost reads a name that is a mesh destination by configuration (a
// bind port's, a gateway route's). A host a client addressed through the
// agent's HTTP proxy may be outside the mesh: [ReadHost] tells which.
func ParseHost(host string, domains []string) (service, subset string, err error) {
	name, _ := stripDomain(hostName(host), domains)
	service, subset, ok := meshName(name)
	if !ok {
		return "", "", notMeshName(host, domains)
	}
	return service, subset, nil
}

// hostName is host without its port and trailing dot, in lower case.
func hostName(host string) string {
	// Without a colon there is no port (and SplitHostPort would make an
	// error to say so, on every call).
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// stripDomain is host without the longest of domains (or DefaultDomain)
// it ends in, and whether it ended in one.
func stripDomain(host string, domains []string) (name string, ok bool) {
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
	return name, longest > 0
}

// meshName reads name as SERVICE or SUBSET.SERVICE.
func meshName(name string) (service, subset string, ok bool) {
	first, rest, dotted := strings.Cut(name, ".")
	if dotted {
		subset, service = first, rest
	} else {
		service = name
	}
	if !isName(service) || (dotted && !isName(subset)) {
		return "", "", false
	}
	return service, subset, true
}

func notMeshName(host string, domains []string) *Error {
	return &Error{Kind: KindNoRoute, Message: fmt.Sprintf(
		"%.64q is not a mesh service name: want SERVICE or SUBSET.SERVICE ([a-z0-9-] labels), optionally followed by .%s", host, strings.Join(append(domains, DefaultDomain), " or ."))}
}

// Dest is where a host that a client addressed leads ([ReadHost]): a mesh
// service (Service, and Subset for some of its instances), or a host
// outside the mesh (External).
type Dest struct {
	Service, Subset string
	// External is a host that is no mesh service: a DNS name (lower case,
	// without its trailing dot) or an IP address (an IPv6 one without
	// brackets), without the port.
	External string
}

// Services is the list of a mesh's services that [ReadHost] asks: the mesh
// file's (policies.File implements it).
type Services interface {
	// Declares reports whether service is a service of the mesh.
	Declares(service string) bool
}

// ReadHost tells whether a host that a client addressed through the
// agent's HTTP proxy names a mesh service or a host outside the mesh,
// by this rule (docs/mesh-file.md, "Which hosts are mesh services"),
// after the port and a trailing dot are dropped and the host lowered:
//
//  1. a name under a mesh domain (one of domains, or [DefaultDomain]) is
//     a mesh service, read as [ParseHost] reads it ("orders.mesh",
//     "v2.orders.mesh"); one that is not SERVICE or SUBSET.SERVICE before
//     the domain is an error;
//  2. an IP address, "localhost" and a name under ".localhost" are
//     external: no mesh service is named so;
//  3. a bare name ("orders") is a mesh service unless the list is
//     complete and does not declare it: with complete, services holds
//     every service of the mesh (the broker's permissions come from the
//     same mesh file, so a name it does not declare has no instance,
//     and a typo is no service); without, the mesh may have services the
//     list does not name (an open broker, a mesh file that lists only the
//     services with policies);
//  4. SUBSET.SERVICE ("v2.orders") is a mesh service when services
//     declares SERVICE; without a mesh file (services nil) it is not:
//     "example.com" is never the subset "example" of a service "com"
//     unless the mesh file declares a service "com" (write
//     "v2.orders.mesh" to name a subset without one);
//  5. any other name ("api.example.com") is external.
//
// A host that is no host at all ("", "*", "orders.>", a space) is an error.
// Errors are *Error of KindNoRoute.
func ReadHost(host string, domains []string, services Services, complete bool) (Dest, error) {
	name := hostName(host)
	if !validHostName(name) {
		return Dest{}, &Error{Kind: KindNoRoute, Message: fmt.Sprintf("%.64q is neither a mesh service nor a host name", host)}
	}
	if n, ok := stripDomain(name, domains); ok {
		service, subset, ok := meshName(n)
		if !ok {
			return Dest{}, notMeshName(host, domains)
		}
		return Dest{Service: service, Subset: subset}, nil
	}
	if isIP(name) || name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return Dest{External: name}, nil
	}
	if service, subset, ok := meshName(name); ok {
		switch {
		case subset == "" && (!complete || services != nil && services.Declares(service)):
			return Dest{Service: service}, nil
		case subset != "" && services != nil && services.Declares(service):
			return Dest{Service: service, Subset: subset}, nil
		}
	}
	return Dest{External: name}, nil
}

// isIP reports whether name is an IP address. Only a name of digits and
// dots, or one with a colon, is asked of netip: its error for any other
// would cost an allocation on every call.
func isIP(name string) bool {
	if strings.IndexByte(name, ':') < 0 && strings.Trim(name, "0123456789.") != "" {
		return false
	}
	_, err := netip.ParseAddr(name)
	return err == nil
}

// validHostName reports whether name (lower case, without port or
// trailing dot) is a DNS name (labels of [a-z0-9_-], 1 to 63 bytes) or
// an IP address.
func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	if strings.IndexByte(name, ':') >= 0 {
		return isIP(name)
	}
	label := 0 // the length of the label so far
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_':
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}
