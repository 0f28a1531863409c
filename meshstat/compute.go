package meshstat

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Sample is the answers of one gathering.
type Sample struct {
	// At is when the gathering started, by the gatherer's clock.
	At        time.Time  `json:"at"`
	Snapshots []Snapshot `json:"snapshots"`
	// Problems lists the answers that were left out, and why.
	Problems []string `json:"problems,omitempty"`
}

// Golden is the golden metrics of some calls over a window.
type Golden struct {
	// Requests and Errors count the calls completed in the window.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// RPS is requests per second: per instance Δrequests / Δnow, summed.
	RPS float64 `json:"rps"`
	// Success is 1 - Errors/Requests; nil without requests.
	Success *float64 `json:"success"`
	// P50MS and P99MS are latency quantiles in milliseconds (see
	// Histogram.Quantile); nil without requests or without a histogram.
	// P50Over and P99Over say the quantile is above the histogram's last
	// bound, which is what P50MS or P99MS then hold.
	P50MS   *float64 `json:"p50_ms"`
	P99MS   *float64 `json:"p99_ms"`
	P50Over bool     `json:"p50_over,omitempty"`
	P99Over bool     `json:"p99_over,omitempty"`
	// MeshErrors counts the mesh errors among Errors by kind.
	MeshErrors map[string]uint64 `json:"mesh_errors,omitempty"`
}

// Report is the golden metrics of the whole mesh over the window between
// two samples.
type Report struct {
	// At is the newest snapshot's now.
	At time.Time `json:"at"`
	// WindowS is the length of the window in seconds: the longest Δnow of
	// an instance seen in both samples (0 when there is none).
	WindowS  float64   `json:"window_s"`
	Services []Service `json:"services"`
	// Edges is the service graph: one edge per caller -> callee pair seen
	// in the window or before.
	Edges    []EdgeStats `json:"edges"`
	Problems []string    `json:"problems,omitempty"`
}

// Service is one service's golden metrics, from the calls its instances
// served (for a service without instances of its own, seen only as a
// callee, from its callers' side; the latency of a service whose
// instances measure none, a NATS-native micro service, from its mesh
// callers' side too).
type Service struct {
	Name string `json:"name"`
	// Kind is the instances' kind (agent, bridge or micro), "mixed",
	// "external" for a service seen only as a callee or caller, or
	// KindEgress for a host outside the mesh (Name "egress:HOST", or
	// EgressOther for the hosts the mesh file does not list).
	Kind      string `json:"kind"`
	Instances int    `json:"instances"`
	Serving   int    `json:"serving"`
	Golden
	Subsets []SubsetStats `json:"subsets,omitempty"`
	Callers []CallerStats `json:"callers,omitempty"`
}

// SubsetStats is the golden metrics of one subset of a service ("" for
// instances without one).
type SubsetStats struct {
	Subset    string `json:"subset"`
	Instances int    `json:"instances"`
	Serving   int    `json:"serving"`
	Golden
}

// CallerStats is the golden metrics of the calls one caller made to a
// service, as the service's instances saw them. Caller "" is outside the
// mesh (a gateway's HTTP clients, a micro service's NATS clients).
type CallerStats struct {
	Caller string `json:"caller"`
	Golden
}

// EdgeStats is the golden metrics of the calls from Caller to Callee.
// Source says whose counters they are: "client" (the caller's outbound
// counters, which include mesh errors such as no-responders that no
// instance of the callee saw) when the caller reports them, else "server"
// (the callee's inbound counters).
type EdgeStats struct {
	Caller string `json:"caller"`
	Callee string `json:"callee"`
	Source string `json:"source"`
	Golden
	// Breakers counts the caller's circuit breakers to the callee (any
	// subset) that are not closed in the newest sample, by state ("open",
	// "half_open"); absent when none is.
	Breakers map[string]uint64 `json:"breakers,omitempty"`
}

// acc adds up deltas into Golden.
type acc struct {
	requests, errors uint64
	rps              float64
	mesh             map[string]uint64
	hists            []Histogram
}

func (a *acc) add(d Edge, dt float64) {
	a.requests += d.Requests
	a.errors += d.Errors
	if dt > 0 {
		a.rps += float64(d.Requests) / dt
	}
	for k, v := range d.MeshErrors {
		if v == 0 {
			continue
		}
		if a.mesh == nil {
			a.mesh = map[string]uint64{}
		}
		a.mesh[k] += v
	}
	if d.Latency.Total() > 0 {
		a.hists = append(a.hists, d.Latency)
	}
}

// golden rounds rates and latencies to 1/1000 (of a request per second, of
// a millisecond) and success to 1e-6, which is past what the counters can
// tell apart and keeps float noise out of JSON; a success rate with errors
// never rounds up to 1.
func (a *acc) golden() Golden {
	g := Golden{Requests: a.requests, Errors: a.errors, RPS: round(a.rps, 1e3), MeshErrors: a.mesh}
	if a.requests == 0 {
		return g
	}
	s := round(1-float64(a.errors)/float64(a.requests), 1e6)
	if s == 1 && a.errors > 0 {
		s = 0.999999
	}
	g.Success = &s
	h := Merge(a.hists...)
	if v, over, ok := h.Quantile(0.5); ok {
		v = round(v, 1e3)
		g.P50MS, g.P50Over = &v, over
	}
	if v, over, ok := h.Quantile(0.99); ok {
		v = round(v, 1e3)
		g.P99MS, g.P99Over = &v, over
	}
	return g
}

func round(v, scale float64) float64 { return math.Round(v*scale) / scale }

// subEdge is what e gained since prev (nil: since the instance started).
// Counters lower than before mean the instance restarted its counters.
func subEdge(e Edge, prev *Edge) Edge {
	if prev == nil || e.Requests < prev.Requests || e.Errors < prev.Errors {
		return e
	}
	d := e
	d.Requests -= prev.Requests
	d.Errors -= prev.Errors
	d.MeshErrors = nil
	for k, v := range e.MeshErrors {
		if d.MeshErrors == nil {
			d.MeshErrors = map[string]uint64{}
		}
		if p := prev.MeshErrors[k]; v >= p {
			d.MeshErrors[k] = v - p
		} else {
			d.MeshErrors[k] = v
		}
	}
	d.Latency = e.Latency.Sub(prev.Latency)
	return d
}

// edgeDeltas pairs each edge of cur with the same edge of prev (nil prev:
// the instance was not in the previous sample, so no edge has a delta).
func edgeDeltas(cur []Edge, prev *[]Edge) []Edge {
	if prev == nil {
		return nil
	}
	old := make(map[string]*Edge, len(*prev))
	for i := range *prev {
		old[(*prev)[i].key()] = &(*prev)[i]
	}
	out := make([]Edge, 0, len(cur))
	for _, e := range cur {
		out = append(out, subEdge(e, old[e.key()]))
	}
	return out
}

type serviceAcc struct {
	kinds     map[string]bool
	instances int
	serving   int
	all       acc
	subsets   map[string]*subsetAcc
	callers   map[string]*acc
	seen      bool // has instances of its own
	// callersLatency is its mesh callers' latency to it (their outbound
	// histograms), shown when its instances measure none.
	callersLatency []Histogram
}

type subsetAcc struct {
	instances, serving int
	acc
}

type edgeAcc struct {
	client, server acc
	hasClient      bool
	breakers       map[string]uint64
}

// Compute returns the golden metrics of the window from prev to cur. prev
// may be the zero Sample: the report then has the services and instances
// of cur, and the edges known so far, without traffic. It is a pure
// function of its arguments.
func Compute(prev, cur Sample) Report {
	r := Report{Problems: slices.Clone(cur.Problems)}
	before := make(map[string]*Snapshot, len(prev.Snapshots))
	for i := range prev.Snapshots {
		before[prev.Snapshots[i].ID] = &prev.Snapshots[i]
	}
	// A gateway's route to a NATS-native endpoint names its callee
	// "nats:SUBJECT"; name it after the micro service serving SUBJECT.
	bySubject := map[string]string{}
	for _, s := range cur.Snapshots {
		for _, subj := range s.Endpoints {
			bySubject["nats:"+subj] = s.Service
		}
	}
	callee := func(name string) string {
		if svc, ok := bySubject[name]; ok {
			return svc
		}
		return name
	}

	services := map[string]*serviceAcc{}
	service := func(name string) *serviceAcc {
		s := services[name]
		if s == nil {
			s = &serviceAcc{kinds: map[string]bool{}, subsets: map[string]*subsetAcc{}, callers: map[string]*acc{}}
			services[name] = s
		}
		return s
	}
	edges := map[[2]string]*edgeAcc{}
	edge := func(from, to string) *edgeAcc {
		k := [2]string{from, to}
		e := edges[k]
		if e == nil {
			e = &edgeAcc{}
			edges[k] = e
		}
		return e
	}

	// In a fixed order, so that sums of rates come out the same to the
	// last bit whatever order the answers arrived in.
	snaps := slices.SortedFunc(slices.Values(cur.Snapshots), func(a, b Snapshot) int {
		return strings.Compare(a.Service+"\x00"+a.Subset+"\x00"+a.ID, b.Service+"\x00"+b.Subset+"\x00"+b.ID)
	})
	for _, s := range snaps {
		if s.Now.After(r.At) {
			r.At = s.Now
		}
		svc := service(s.Service)
		svc.seen = true
		svc.kinds[s.Kind] = true
		svc.instances++
		sub := svc.subsets[s.Subset]
		if sub == nil {
			sub = &subsetAcc{}
			svc.subsets[s.Subset] = sub
		}
		sub.instances++
		if s.Serving {
			svc.serving++
			sub.serving++
		}
		var dt float64
		var prevIn, prevOut *[]Edge
		if p := before[s.ID]; p != nil {
			dt = s.Now.Sub(p.Now).Seconds()
			if dt > 0 {
				prevIn, prevOut = &p.Inbound, &p.Outbound
				r.WindowS = max(r.WindowS, dt)
			}
		}
		// The graph knows every pair ever seen, with or without traffic
		// in this window.
		for _, e := range s.Inbound {
			if e.Caller != "" {
				edge(e.Caller, s.Service)
			}
		}
		for _, e := range s.Outbound {
			edge(s.Service, callee(e.Callee)).hasClient = true
		}
		for _, d := range edgeDeltas(s.Inbound, prevIn) {
			svc.all.add(d, dt)
			sub.add(d, dt)
			c := svc.callers[d.Caller]
			if c == nil {
				c = &acc{}
				svc.callers[d.Caller] = c
			}
			c.add(d, dt)
			if d.Caller != "" {
				edge(d.Caller, s.Service).server.add(d, dt)
			}
		}
		for _, b := range s.Breakers {
			e := edge(s.Service, callee(b.Callee))
			if e.breakers == nil {
				e.breakers = map[string]uint64{}
			}
			e.breakers[b.State] += b.Count
		}
		for _, d := range edgeDeltas(s.Outbound, prevOut) {
			edge(s.Service, callee(d.Callee)).client.add(d, dt)
		}
	}
	// A name called that has no instance of its own and is no host
	// outside the mesh (a typo, a service gone) is shown while it is
	// called: an edge to it without a call in this window is dropped,
	// and the name with its last edge (issue 19: such names stayed for
	// ever, as services). Egress destinations are bounded by the mesh
	// file (decision 104) and stay. A first sample, with no window,
	// keeps every pair.
	if r.WindowS > 0 {
		maps.DeleteFunc(edges, func(k [2]string, e *edgeAcc) bool {
			to := services[k[1]]
			return (to == nil || !to.seen) && !strings.HasPrefix(k[1], EgressPrefix) &&
				e.client.requests == 0 && e.server.requests == 0
		})
	}
	keys := slices.SortedFunc(maps.Keys(edges), func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	for _, k := range keys {
		e := edges[k]
		for _, name := range k {
			service(name)
		}
		// A service known only as a callee shows its callers' view.
		to := services[k[1]]
		if !to.seen && e.hasClient {
			to.all.add(Edge{Requests: e.client.requests, Errors: e.client.errors, MeshErrors: e.client.mesh, Latency: Merge(e.client.hists...)}, 0)
			to.all.rps += e.client.rps
		}
		to.callersLatency = append(to.callersLatency, e.client.hists...)
	}
	// A service whose instances measure no latency (a NATS-native micro
	// service: $SRV.STATS has no histogram) shows its mesh callers'
	// latency to it, which its edges show too (issue 19: its row had
	// none while they did).
	for _, s := range services {
		if _, _, ok := Merge(s.all.hists...).Quantile(0.5); !ok {
			s.all.hists = s.callersLatency
		}
	}

	for _, name := range slices.Sorted(maps.Keys(services)) {
		s := services[name]
		out := Service{Name: name, Kind: "external", Instances: s.instances, Serving: s.serving, Golden: s.all.golden()}
		if strings.HasPrefix(name, EgressPrefix) && !s.seen {
			out.Kind = KindEgress
		}
		if len(s.kinds) == 1 {
			for k := range s.kinds {
				out.Kind = k
			}
		} else if len(s.kinds) > 1 {
			out.Kind = "mixed"
		}
		for _, sub := range slices.Sorted(maps.Keys(s.subsets)) {
			a := s.subsets[sub]
			out.Subsets = append(out.Subsets, SubsetStats{Subset: sub, Instances: a.instances, Serving: a.serving, Golden: a.golden()})
		}
		for _, c := range slices.Sorted(maps.Keys(s.callers)) {
			out.Callers = append(out.Callers, CallerStats{Caller: c, Golden: s.callers[c].golden()})
		}
		r.Services = append(r.Services, out)
	}
	for _, k := range keys {
		e := edges[k]
		out := EdgeStats{Caller: k[0], Callee: k[1], Source: "server", Golden: e.server.golden(), Breakers: e.breakers}
		if e.hasClient {
			out.Source, out.Golden = "client", e.client.golden()
		}
		r.Edges = append(r.Edges, out)
	}
	if r.Services == nil {
		r.Services = []Service{}
	}
	if r.Edges == nil {
		r.Edges = []EdgeStats{}
	}
	return r
}
