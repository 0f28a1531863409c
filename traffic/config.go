package traffic

import (
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// Config is what the traffic middleware is built from.
type Config struct {
	// Service is the local component's name: the caller of outbound calls
	// (a service, or the gateway's name), the callee of inbound ones.
	Service string
	// Policies is the live mesh file, read at every call. Nil: every
	// middleware passes calls through.
	Policies *live.Source
	// Logger receives the middleware's decisions (dropped mirrors).
	// Default slog.Default().
	Logger *slog.Logger
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c Config) current() *policies.File {
	if c.Policies == nil {
		return nil
	}
	f, _ := c.Policies.Current()
	return f
}

// resolved is the merged policy of one service and route, with its split
// and mirror prepared for the hot path.
type resolved struct {
	policy policies.Policy
	// split is cumulative: a call draws r in [0, total) and takes the
	// first subset whose bound exceeds r.
	split []weighted
	total int
	// mirror is nil when the policy mirrors nothing.
	mirror *mirrorTo
}

type weighted struct {
	subset string
	bound  int
}

type mirrorTo struct {
	service, subset string
	fraction        float64
}

// pick draws a subset by weight.
func (r *resolved) pick() string {
	if r.total <= 0 {
		return ""
	}
	n := rand.IntN(r.total)
	for _, w := range r.split {
		if n < w.bound {
			return w.subset
		}
	}
	return r.split[len(r.split)-1].subset
}

// byWeight are the split's subsets, the heaviest first.
func (r *resolved) byWeight() []string {
	out := make([]string, 0, len(r.split))
	prev := 0
	type sw struct {
		s string
		w int
	}
	ws := make([]sw, 0, len(r.split))
	for _, w := range r.split {
		ws = append(ws, sw{w.subset, w.bound - prev})
		prev = w.bound
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].w > ws[j].w })
	for _, w := range ws {
		if w.w > 0 {
			out = append(out, w.s)
		}
	}
	return out
}

// resolver caches the resolved policies of the current file: File.Policy
// merges four levels by reflection, too slow for every call. The cache is
// dropped whole when the file changes.
type resolver struct {
	cur atomic.Pointer[resolverCache]
}

type resolverCache struct {
	file *policies.File
	m    sync.Map // routeKey -> *resolved
}

type routeKey struct{ service, route string }

// resolve returns the merged policy of calls to service on route ("" for
// none) under f.
func (rs *resolver) resolve(f *policies.File, service, route string) *resolved {
	c := rs.cur.Load()
	if c == nil || c.file != f {
		c = &resolverCache{file: f}
		rs.cur.Store(c)
	}
	if f == nil || f.Services[service] == nil {
		// A service the file does not declare (callers may name any):
		// one shared entry, so the cache cannot grow with made-up names.
		service = ""
	}
	k := routeKey{service, route}
	if v, ok := c.m.Load(k); ok {
		return v.(*resolved)
	}
	r := &resolved{policy: f.Policy(service, route)}
	for _, s := range slices.Sorted(maps.Keys(r.policy.Split)) {
		if w := r.policy.Split[s]; w > 0 {
			r.total += w
			r.split = append(r.split, weighted{subset: s, bound: r.total})
		}
	}
	if m := r.policy.Mirror; m != nil {
		svc, subset, _ := splitDest(m.To)
		frac := 1.0
		if m.Percent != nil {
			frac = m.Percent.Fraction()
		}
		if frac > 0 {
			r.mirror = &mirrorTo{service: svc, subset: subset, fraction: frac}
		}
	}
	v, _ := c.m.LoadOrStore(k, r)
	return v.(*resolved)
}

// splitDest reads a mirror's "SERVICE" or "SERVICE@SUBSET".
func splitDest(to string) (service, subset string, ok bool) {
	for i := 0; i < len(to); i++ {
		if to[i] == '@' {
			return to[:i], to[i+1:], true
		}
	}
	return to, "", false
}

// matchInput describes an outbound call for File.MatchRoute.
func matchInput(c *pipeline.Call) policies.MatchInput {
	in := policies.MatchInput{Header: c.Header}
	switch c.Proto {
	case wire.ProtoGRPC:
		in.Proto, in.GRPCMethod = policies.ProtoGRPC, c.Op
	default:
		in.Proto, in.Method, in.Path = policies.ProtoHTTP, c.Op, c.Path
	}
	return in
}

// chance reports true with probability p (0 to 1).
func chance(p float64) bool {
	return p >= 1 || (p > 0 && rand.Float64() < p)
}
