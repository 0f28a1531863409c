package policies

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxNameLen bounds names like a DNS label (and like wire.ValidateName).
const maxNameLen = 63

// validName reports what is wrong with a service, subset, account, caller
// or route name, or "" if nothing is. The rule is wire.ValidateName's:
// [a-z0-9-], starting and ending with a letter or digit, at most 63.
func validName(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > maxNameLen {
		return fmt.Sprintf("name %.20q... is longer than %d characters", name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return fmt.Sprintf("%q is not a valid name: use [a-z0-9-], starting and ending with a letter or digit", name)
		}
	}
	return ""
}

// validator checks a decoded file for consistency and fills in the
// defaults of its non-policy parts.
type validator struct {
	d *decoder
	f *File
}

func (v *validator) errf(path, format string, args ...any) { v.d.failAt(path, format, args...) }

func (v *validator) name(path, name string) bool {
	if msg := validName(name); msg != "" {
		v.errf(path, "%s", msg)
		return false
	}
	return true
}

func (v *validator) accountKnown(name string) bool {
	_, ok := v.f.Accounts[name]
	return ok || name == DefaultAccount
}

func (v *validator) accountNames() string {
	names := slices.Sorted(maps.Keys(v.f.Accounts))
	if !slices.Contains(names, DefaultAccount) {
		names = append(names, DefaultAccount)
	}
	return strings.Join(names, ", ")
}

func (v *validator) file() {
	f := v.f
	v.ranges("", reflect.ValueOf(f))
	switch f.Version {
	case 1:
	case 0:
		v.errf("version", "required: start the file with \"version: 1\"")
	default:
		v.errf("version", "version %d is not supported (want 1)", f.Version)
	}
	switch f.Allow {
	case "":
		f.Allow = AllowAll
	case AllowAll, AllowDeny:
	default:
		v.errf("allow", "%q: want %q or %q", f.Allow, AllowAll, AllowDeny)
	}
	for _, name := range slices.Sorted(maps.Keys(f.Accounts)) {
		v.name("accounts."+name, name)
		if f.Accounts[name] == nil {
			f.Accounts[name] = &Account{}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		if f.Services[name] == nil {
			f.Services[name] = &Service{}
		}
		if v.name("services."+name, name) {
			v.service("services."+name, name, f.Services[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Accounts)) {
		for i, e := range f.Accounts[name].Exports {
			p := fmt.Sprintf("accounts.%s.exports[%d]", name, i)
			switch s := f.Services[e.Service]; {
			case e.Service == "":
				v.errf(p+".service", "required: the service to export")
			case s == nil:
				v.errf(p+".service", "unknown service %q", e.Service)
			case s.Account != name:
				v.errf(p+".service", "service %q is in account %q, not %q", e.Service, s.Account, name)
			}
			if len(e.To) == 0 {
				v.errf(p+".to", "required: the accounts that may import %q", e.Service)
			}
			for j, to := range e.To {
				switch {
				case !v.accountKnown(to):
					v.errf(fmt.Sprintf("%s.to[%d]", p, j), "unknown account %q (accounts: %s)", to, v.accountNames())
				case to == name:
					v.errf(fmt.Sprintf("%s.to[%d]", p, j), "an account does not export to itself")
				}
			}
		}
	}
	v.policy("defaults", f.Defaults, nil)
	v.egress(f.Egress)
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		if validName(name) == "" {
			v.hedges(name, f.Services[name])
		}
	}
}

func (v *validator) service(path, name string, s *Service) {
	if s.Account == "" {
		s.Account = DefaultAccount
	} else if !v.accountKnown(s.Account) {
		v.errf(path+".account", "unknown account %q (accounts: %s)", s.Account, v.accountNames())
	}
	seen := map[string]bool{}
	for i, sub := range s.Subsets {
		p := fmt.Sprintf("%s.subsets[%d]", path, i)
		if v.name(p, sub) && seen[sub] {
			v.errf(p, "subset %q appears twice", sub)
		}
		seen[sub] = true
	}
	for i, a := range s.Allow {
		p := fmt.Sprintf("%s.allow[%d]", path, i)
		switch {
		case a.Caller == "":
			v.errf(p, "caller: required: a service name or %q", BridgeCaller)
		case a.Caller != BridgeCaller && v.f.Services[a.Caller] == nil:
			v.errf(p+".caller", "unknown caller %q: not a service of this file nor %q", a.Caller, BridgeCaller)
		}
		for j, m := range a.Methods {
			if strings.Contains(m, "/") {
				v.grpcPattern(fmt.Sprintf("%s.methods[%d]", p, j), m)
			} else {
				v.httpMethod(fmt.Sprintf("%s.methods[%d]", p, j), m)
			}
		}
		for j, pp := range a.Paths {
			v.pathPrefix(fmt.Sprintf("%s.paths[%d]", p, j), pp)
		}
	}
	if in := s.Inbound; in != nil {
		v.inbound(path+".inbound", in)
	}
	v.policy(path+".policy", s.Policy, s)
	routes := map[string]bool{}
	for i := range s.Routes {
		r := &s.Routes[i]
		p := fmt.Sprintf("%s.routes[%d]", path, i)
		switch {
		case r.Name == "":
			v.errf(p, "name: required: routes are named (for File.Policy, metrics and logs)")
		case !v.name(p+".name", r.Name):
		case routes[r.Name]:
			v.errf(p+".name", "route %q appears twice in service %s", r.Name, name)
		}
		routes[r.Name] = true
		v.match(p+".match", &r.Match)
		if r.Split != nil {
			v.split(p+".split", r.Split, s)
			if r.Policy != nil && r.Policy.Split != nil {
				v.errf(p+".policy.split", "the route sets split already: keep one")
			}
		}
		v.policy(p+".policy", r.Policy, s)
	}
}

func (v *validator) inbound(path string, in *Inbound) {
	if rl := in.RateLimit; rl != nil {
		if rl.PerCaller == 0 {
			v.errf(path+".rate_limit.per_caller", "required: a positive number of calls per %q", "per")
		}
		if rl.Per == 0 {
			rl.Per = Duration(time.Second)
		}
	}
	if ph := in.PassiveHealth; ph != nil {
		if ph.FailureRatio == 0 {
			ph.FailureRatio = 50
		}
		if ph.Window == 0 {
			ph.Window = Duration(10 * time.Second)
		}
		if ph.MinRequests == 0 {
			ph.MinRequests = 20
		}
		if ph.CoolOff == 0 {
			ph.CoolOff = Duration(30 * time.Second)
		}
		if ph.MaxEjected == 0 {
			ph.MaxEjected = 50
		}
	}
}

func (v *validator) httpMethod(path, m string) {
	if m == "" || strings.ToUpper(m) != m || strings.IndexFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		v.errf(path, "%q is not an HTTP method such as GET (upper case)", m)
	}
}

func (v *validator) grpcPattern(path, g string) {
	svc, method, ok := strings.Cut(g, "/")
	if !ok || svc == "" || method == "" || strings.Contains(method, "/") || strings.ContainsAny(g, " \t*") && method != "*" {
		v.errf(path, "%q is not a gRPC method such as \"pkg.Service/Method\" or \"pkg.Service/*\"", g)
	}
}

func (v *validator) pathPrefix(path, p string) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " ?#\t") {
		v.errf(path, "%q is not a path prefix such as \"/api\" (starting with /, no query)", p)
	}
}

func (v *validator) match(path string, m *Match) {
	if m.PathPrefix != "" {
		v.pathPrefix(path+".path_prefix", m.PathPrefix)
	}
	for i, meth := range m.Methods {
		v.httpMethod(fmt.Sprintf("%s.methods[%d]", path, i), meth)
	}
	if m.GRPC != "" {
		v.grpcPattern(path+".grpc", m.GRPC)
		if m.PathPrefix != "" || len(m.Methods) > 0 {
			v.errf(path+".grpc", "a gRPC match cannot also match HTTP path_prefix or methods: make two routes")
		}
	}
	if len(m.Headers) > 0 {
		h := make(map[string]string, len(m.Headers))
		for k, val := range m.Headers {
			if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) {
				v.errf(path+".headers."+k, "%q is not a header name", k)
			}
			h[strings.ToLower(k)] = val
		}
		m.Headers = h
	}
}

func (v *validator) split(path string, split map[string]int, s *Service) {
	if len(split) == 0 {
		v.errf(path, "empty split: give subsets with weights summing to 100")
		return
	}
	sum := 0
	for _, sub := range slices.Sorted(maps.Keys(split)) {
		w := split[sub]
		if !slices.Contains(s.Subsets, sub) {
			v.errf(path+"."+sub, "unknown subset %q (the service's subsets: %s)", sub, listOrNone(s.Subsets))
		}
		if w > 100 {
			v.errf(path+"."+sub, "weight %d is over 100", w)
		}
		sum += w
	}
	if sum != 100 {
		v.errf(path, "weights sum to %d, want 100", sum)
	}
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// policy checks one level of policy; s is the service it belongs to, nil
// for the file's defaults.
func (v *validator) policy(path string, p *Policy, s *Service) {
	if p == nil {
		return
	}
	if p.Timeout != nil && *p.Timeout == 0 {
		v.errf(path+".timeout", "must be positive: every call has a deadline")
	}
	if p.Timeout != nil && p.AttemptTimeout != nil && *p.AttemptTimeout > *p.Timeout {
		v.errf(path+".attempt_timeout", "%s is longer than the timeout %s", p.AttemptTimeout, p.Timeout)
	}
	if r := p.Retries; r != nil {
		if r.Attempts != nil && (*r.Attempts < 1 || *r.Attempts > 10) {
			v.errf(path+".retries.attempts", "%d: want 1 (no retries) to 10", *r.Attempts)
		}
		if r.Backoff != nil && r.MaxBackoff != nil && *r.MaxBackoff < *r.Backoff {
			v.errf(path+".retries.max_backoff", "%s is shorter than the backoff %s", r.MaxBackoff, r.Backoff)
		}
	}
	if cb := p.CircuitBreaker; cb != nil {
		if cb.FailureRatio != nil && *cb.FailureRatio == 0 {
			v.errf(path+".circuit_breaker.failure_ratio", "must be over 0%% (to turn the breaker off, write enabled: false)")
		}
		positive(v, path+".circuit_breaker.window", cb.Window)
		positive(v, path+".circuit_breaker.open_for", cb.OpenFor)
		atLeastOne(v, path+".circuit_breaker.min_requests", cb.MinRequests)
		atLeastOne(v, path+".circuit_breaker.half_open_probes", cb.HalfOpenProbes)
	}
	if h := p.Hedge; h != nil {
		switch {
		case (h.Delay == nil) == (h.Percentile == nil):
			v.errf(path+".hedge", "give exactly one of delay and percentile")
		case h.Delay != nil:
			positive(v, path+".hedge.delay", h.Delay)
		case *h.Percentile <= 0 || *h.Percentile >= 100:
			v.errf(path+".hedge.percentile", "%v: want a percentile between 0 and 100", *h.Percentile)
		}
		if h.Max == nil {
			h.Max = ptr(1)
		} else if *h.Max < 1 || *h.Max > 5 {
			v.errf(path+".hedge.max", "%d: want 1 to 5 extra attempts", *h.Max)
		}
	}
	if p.Split != nil {
		if s == nil {
			v.errf(path+".split", "a split names one service's subsets: set it in a service's policy or route")
		} else {
			v.split(path+".split", p.Split, s)
		}
	}
	if m := p.Mirror; m != nil {
		if s == nil {
			v.errf(path+".mirror", "a mirror belongs to one service: set it in a service's policy or route")
		} else {
			v.mirror(path+".mirror", m)
		}
	}
	if fl := p.Fault; fl != nil {
		if d := fl.Delay; d != nil && d.Duration == 0 {
			v.errf(path+".fault.delay.duration", "required: a positive delay")
		}
		if a := fl.Abort; a != nil {
			switch {
			case (a.Status == 0) == (a.Error == ""):
				v.errf(path+".fault.abort", "give exactly one of status and error")
			case a.Error != "" && !slices.Contains(meshErrors, a.Error):
				v.errf(path+".fault.abort.error", "%q is not a mesh error (%s)", a.Error, strings.Join(meshErrors, ", "))
			case a.Error == "" && (a.Status < 400 || a.Status > 599):
				v.errf(path+".fault.abort.status", "%d: want an HTTP error status, 400-599", a.Status)
			}
		}
	}
}

func (v *validator) mirror(path string, m *Mirror) {
	if m.To == "" {
		v.errf(path+".to", "required: SERVICE or SERVICE@SUBSET")
		return
	}
	svc, sub, hasSub := strings.Cut(m.To, "@")
	target := v.f.Services[svc]
	switch {
	case validName(svc) != "":
		v.errf(path+".to", "%q: want SERVICE or SERVICE@SUBSET (%s)", m.To, validName(svc))
	case target == nil:
		v.errf(path+".to", "unknown service %q", svc)
	case hasSub && !slices.Contains(target.Subsets, sub):
		v.errf(path+".to", "unknown subset %q of %s (its subsets: %s)", sub, svc, listOrNone(target.Subsets))
	}
	if m.Percent == nil {
		m.Percent = ptr(Percent(100))
	}
}

func positive(v *validator, path string, d *Duration) {
	if d != nil && *d == 0 {
		v.errf(path, "must be positive")
	}
}

func atLeastOne(v *validator, path string, n *int) {
	if n != nil && *n < 1 {
		v.errf(path, "must be at least 1")
	}
}

// hedges refuses a hedge, wherever it was set, on calls that are not
// known to be idempotent: a hedge sends a call twice.
func (v *validator) hedges(name string, s *Service) {
	const fix = "a hedge sends a call twice, so set idempotent: true or match only idempotent methods (" +
		"GET, HEAD, OPTIONS, TRACE, PUT, DELETE)"
	svcPath := "services." + name
	if !hedgeSet(v.f.Defaults) && !hedgeSet(s.Policy) && !slices.ContainsFunc(s.Routes, func(r Route) bool { return hedgeSet(r.Policy) }) {
		return // no hedge anywhere: skip merging every route's policy
	}
	origin := func(r *Route, routePath string) string {
		switch {
		case r != nil && r.Policy != nil && r.Policy.Hedge != nil:
			return routePath + ".policy.hedge"
		case s.Policy != nil && s.Policy.Hedge != nil:
			return svcPath + ".policy.hedge"
		}
		return "defaults.hedge"
	}
	if p := v.f.Policy(name, ""); p.Hedge != nil && !*p.Idempotent {
		v.errf(origin(nil, ""), "hedge on calls to %s that match no route, which may use any method: %s", name, fix)
	}
	for i := range s.Routes {
		r := &s.Routes[i]
		p := v.f.Policy(name, r.Name)
		if p.Hedge == nil || *p.Idempotent {
			continue
		}
		var why string
		switch {
		case r.Match.GRPC != "":
			why = "a gRPC route, whose methods are not known to be idempotent"
		case len(r.Match.Methods) == 0:
			why = "which matches any method"
		default:
			var bad []string
			for _, m := range r.Match.Methods {
				if !IdempotentMethod(m) {
					bad = append(bad, m)
				}
			}
			if len(bad) == 0 {
				continue
			}
			why = "which matches " + strings.Join(bad, ", ")
		}
		rp := svcPath + ".routes[" + strconv.Itoa(i) + "]"
		v.errf(origin(r, rp), "hedge on route %q of %s, %s: %s", r.Name, name, why, fix)
	}
}

func hedgeSet(p *Policy) bool { return p != nil && p.Hedge != nil }

// intRange reports what is wrong with a whole number of the file, or "" if
// nothing is: none is negative, none exceeds MaxInt32 (so every count fits
// the int32 of the libraries it configures).
func intRange(i int64) string {
	switch {
	case i < 0:
		return fmt.Sprintf("%d: must not be negative", i)
	case i > math.MaxInt32:
		return fmt.Sprintf("%d: too large", i)
	}
	return ""
}

// ranges checks every whole number and number in v, at path, against the
// ranges Parse's decoder enforces (intRange; numbers not negative). On
// Parse's path the decoder has refused such values already; ParseStored's
// encoding/json does not, and this check is what keeps the two paths
// refusing the same files (FuzzParseStored).
func (v *validator) ranges(path string, val reflect.Value) {
	switch val.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !val.IsNil() {
			v.ranges(path, val.Elem())
		}
	case reflect.Struct:
		t := val.Type()
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				v.ranges(join(path, yamlName(f)), val.Field(i))
			}
		}
	case reflect.Map:
		for _, k := range val.MapKeys() {
			v.ranges(join(path, k.String()), val.MapIndex(k))
		}
	case reflect.Slice:
		for i := range val.Len() {
			v.ranges(path+"["+strconv.Itoa(i)+"]", val.Index(i))
		}
	case reflect.Int: // not Duration (int64), whose own decoder checks it
		if msg := intRange(val.Int()); msg != "" {
			v.errf(path, "%s", msg)
		}
	case reflect.Float64:
		if f := val.Float(); f < 0 {
			v.errf(path, "%s: must not be negative", strconv.FormatFloat(f, 'f', -1, 64))
		}
	}
}
