package policies

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/natsmesh/natsmesh/wire"
)

// Egress modes (Egress.Mode), as Istio's outbound traffic policy names
// them: ALLOW_ANY and REGISTRY_ONLY.
const (
	// EgressAllowAny lets a call to any host outside the mesh go out.
	EgressAllowAny = "allow_any"
	// EgressRegistryOnly lets out only calls to the hosts listed in
	// Egress.Hosts; any other is refused with egress-denied.
	EgressRegistryOnly = "registry_only"
)

// EgressOther is the entry of an external host that Egress.Hosts does not
// list ([File.EgressEntry]): its calls are counted together under it, so
// the metrics have one series for all such hosts, however many there are.
const EgressOther = "_other"

// Egress governs the calls a service makes through its agent's HTTP proxy
// to hosts outside the mesh (wire.ReadHost says which hosts those are).
type Egress struct {
	// Mode is EgressAllowAny (any host) or EgressRegistryOnly (only the
	// hosts listed). Default EgressAllowAny.
	Mode string `yaml:"mode" json:"mode"`
	// Hosts are the external hosts the mesh knows, by name: a DNS name
	// ("api.stripe.com"), "*." and a DNS name for any name under it
	// ("*.example.com": "a.example.com", not "example.com"), or an IP
	// address. No port: the entry covers every port. A listed host's
	// calls are labelled by its entry in the metrics and get its policy.
	// Default: none.
	Hosts map[string]*EgressHost `yaml:"hosts" json:"hosts,omitempty"`
}

// EgressHost is one external host the mesh file lists.
type EgressHost struct {
	// Policy governs the calls to the host over the file's defaults
	// (File.EgressPolicy): timeout, attempt_timeout, idempotent, retries,
	// circuit_breaker, bulkhead. Split, mirror, hedge and fault name the
	// mesh's subsets or copy calls, and are refused. Default: the file's
	// defaults.
	Policy *Policy `yaml:"policy" json:"policy,omitempty"`
}

// Declares reports whether f declares service, for wire.ReadHost.
func (f *File) Declares(service string) bool {
	_, ok := f.Services[service]
	return ok
}

var _ wire.Services = (*File)(nil)

// EgressMode is the file's egress mode: EgressAllowAny when it sets none,
// and for a nil file (the built-in policy).
func (f *File) EgressMode() string {
	if f == nil || f.Egress == nil || f.Egress.Mode == "" {
		return EgressAllowAny
	}
	return f.Egress.Mode
}

// EgressEntry returns the entry of Egress.Hosts that host (lower case,
// without port, as wire.ReadHost gives it) falls under, its exact name
// first, else the longest wildcard that covers it, and whether a call to
// host may leave the mesh: a listed host always may, another only in
// EgressAllowAny mode. A host no entry covers has the entry EgressOther.
func (f *File) EgressEntry(host string) (entry string, allowed bool) {
	if f != nil && f.Egress != nil {
		hosts := f.Egress.Hosts
		if _, ok := hosts[host]; ok {
			return host, true
		}
		best := ""
		for pattern := range hosts {
			if suffix, ok := strings.CutPrefix(pattern, "*"); ok && len(pattern) > len(best) && strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				best = pattern
			}
		}
		if best != "" {
			return best, true
		}
	}
	return EgressOther, f.EgressMode() == EgressAllowAny
}

// EgressPolicy returns the policy of calls to the external host listed as
// entry: the built-in defaults, the file's defaults and the entry's
// policy, merged in that order, without hedge, split, mirror or fault (a
// tunnel is not opened twice, and egress has no subsets). An entry the
// file does not list, EgressOther among them, gets the same merge
// without a policy of its own. The result shares nothing with f.
func (f *File) EgressPolicy(entry string) Policy {
	p := BuiltinPolicy()
	if f == nil {
		return p
	}
	merge(&p, f.Defaults)
	if f.Egress != nil {
		if h := f.Egress.Hosts[entry]; h != nil {
			merge(&p, h.Policy)
		}
	}
	p.Hedge, p.Split, p.Mirror, p.Fault = nil, nil, nil, nil
	return p
}

// egress checks the file's egress section and fills in its mode.
func (v *validator) egress(e *Egress) {
	if e == nil {
		return
	}
	switch e.Mode {
	case "":
		e.Mode = EgressAllowAny
	case EgressAllowAny, EgressRegistryOnly:
	default:
		v.errf("egress.mode", "%q: want %q (any host may be called) or %q (only egress.hosts)", e.Mode, EgressAllowAny, EgressRegistryOnly)
	}
	for _, name := range slices.Sorted(maps.Keys(e.Hosts)) {
		path := "egress.hosts." + name
		h := e.Hosts[name]
		if h == nil {
			h = &EgressHost{}
			e.Hosts[name] = h
		}
		host, wild := strings.CutPrefix(name, "*.")
		if ip, err := netip.ParseAddr(host); err == nil {
			if wild || ip.String() != host {
				v.errf(path, "%q: write an IP address as %q, without a wildcard or a port", name, ip.String())
			}
		} else {
			d, err := wire.ReadHost(host, nil, v.f, true)
			switch {
			case err != nil || d.External != "" && d.External != host:
				v.errf(path, "%q is not a host name: want a DNS name in lower case (api.example.com), *.DOMAIN for the names under DOMAIN, or an IP address, without a port", name)
			case d.External == "":
				v.errf(path, "%q names a service of the mesh (%s), not an external host", name, meshDest(d))
			case wild && strings.IndexByte(host, '.') < 0:
				v.errf(path, "%q covers a whole top-level domain: name a domain (*.example.com)", name)
			}
		}
		if p := h.Policy; p != nil {
			for _, f := range []struct {
				name string
				set  bool
			}{{"split", p.Split != nil}, {"mirror", p.Mirror != nil}, {"hedge", p.Hedge != nil}, {"fault", p.Fault != nil}} {
				if f.set {
					v.errf(path+".policy."+f.name, "not for an external host: its policy takes timeout, attempt_timeout, idempotent, retries, circuit_breaker and bulkhead")
				}
			}
			v.policy(path+".policy", &Policy{Timeout: p.Timeout, AttemptTimeout: p.AttemptTimeout, Retries: p.Retries, CircuitBreaker: p.CircuitBreaker}, nil)
		}
	}
}

func meshDest(d wire.Dest) string {
	if d.Subset != "" {
		return "subset " + d.Subset + " of service " + d.Service
	}
	return "service " + d.Service
}
