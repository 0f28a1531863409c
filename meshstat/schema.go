package meshstat

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kinds of instance in a Snapshot.
const (
	KindAgent  = "agent"  // a natsmesh agent (sidecar or in-process)
	KindBridge = "bridge" // an edge gateway
	KindMicro  = "micro"  // a plain NATS micro service (no natsmesh field)
)

// EgressPrefix begins the callee of an outbound edge (and of a breaker)
// to a host outside the mesh: "egress:api.stripe.com" for a host the mesh
// file lists under egress.hosts (its entry, "egress:*.example.com" for a
// wildcard), [EgressOther] for every host it does not list, counted
// together so that the series stay bounded.
const EgressPrefix = "egress:"

// EgressOther is the callee of the calls to the external hosts the mesh
// file does not list.
const EgressOther = EgressPrefix + "_other"

// KindEgress is the kind of a [Service] of a Report that is an external
// host (a callee EgressPrefix+HOST), as opposed to a service of the mesh.
const KindEgress = "egress"

// ErrInvalid marks a $SRV.STATS answer that does not follow the schema.
var ErrInvalid = errors.New("meshstat: invalid stats")

// Snapshot is the cumulative counters of one instance at one moment: the
// "natsmesh" field of its $SRV.STATS answer (docs/observability.md, "Stats
// schema"). These types are the schema's one definition: agents and
// gateways write them (package telemetry's Snapshot is this type), and
// meshstat reads them.
type Snapshot struct {
	Service string    `json:"service"`
	Subset  string    `json:"subset"`
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Serving bool      `json:"serving"`
	Started time.Time `json:"started"`
	// Now is when the snapshot was taken, by the instance's clock (for
	// kind micro, which reports none, by the gatherer's).
	Now      time.Time `json:"now"`
	Inbound  []Edge    `json:"inbound"`
	Outbound []Edge    `json:"outbound"`
	// Endpoints are the subjects a micro service's endpoints serve (kind
	// micro only), so that a gateway's callee "nats:SUBJECT" can be named
	// after the service behind it.
	Endpoints []string `json:"endpoints,omitempty"`
	// Breakers are the instance's circuit breakers on its outbound calls
	// that are not closed, counted by callee, subset and state.
	Breakers []Breaker `json:"breakers,omitempty"`
}

// Breaker counts an instance's circuit breakers to one callee and subset
// that are in State ("open" or "half_open").
type Breaker struct {
	Callee string `json:"callee"`
	Subset string `json:"subset"`
	State  string `json:"state"`
	Count  uint64 `json:"count"`
}

// Edge is one entry of a snapshot's inbound (Caller set) or outbound (Callee
// and Subset set) calls, cumulative since the instance started.
type Edge struct {
	Caller string `json:"caller,omitempty"`
	Callee string `json:"callee,omitempty"`
	Subset string `json:"subset,omitempty"`
	Proto  string `json:"proto"`
	// Requests counts completed calls; Errors the failed ones among them
	// (mesh errors, HTTP 5xx, gRPC server-side codes); MeshErrors the mesh
	// errors among Errors by kind.
	Requests   uint64            `json:"requests"`
	Errors     uint64            `json:"errors"`
	MeshErrors map[string]uint64 `json:"mesh_errors,omitempty"`
	Latency    Histogram         `json:"latency"`
}

// MarshalJSON writes e as an agent or a gateway answers it
// (docs/observability.md): an inbound edge (no Callee) with "caller", an
// outbound one with "callee" and "subset" ("" for any instance), and
// "mesh_errors" always ({} when there are none).
func (e Edge) MarshalJSON() ([]byte, error) {
	meshErrors := e.MeshErrors
	if meshErrors == nil {
		meshErrors = map[string]uint64{}
	}
	if e.Callee != "" {
		return json.Marshal(struct {
			Callee     string            `json:"callee"`
			Subset     string            `json:"subset"`
			Proto      string            `json:"proto"`
			Requests   uint64            `json:"requests"`
			Errors     uint64            `json:"errors"`
			MeshErrors map[string]uint64 `json:"mesh_errors"`
			Latency    Histogram         `json:"latency"`
		}{e.Callee, e.Subset, e.Proto, e.Requests, e.Errors, meshErrors, e.Latency})
	}
	return json.Marshal(struct {
		Caller     string            `json:"caller"`
		Proto      string            `json:"proto"`
		Requests   uint64            `json:"requests"`
		Errors     uint64            `json:"errors"`
		MeshErrors map[string]uint64 `json:"mesh_errors"`
		Latency    Histogram         `json:"latency"`
	}{e.Caller, e.Proto, e.Requests, e.Errors, meshErrors, e.Latency})
}

// key identifies an edge within one instance's inbound or outbound list.
func (e Edge) key() string {
	return e.Caller + "\x00" + e.Callee + "\x00" + e.Subset + "\x00" + e.Proto
}

// Histogram is a latency histogram with per-bucket (not cumulative) counts:
// Counts[0] counts values <= BoundsMS[0], Counts[i] values in
// (BoundsMS[i-1], BoundsMS[i]], and the last, Counts[len(BoundsMS)], values
// above the last bound. The zero value is an empty histogram.
type Histogram struct {
	BoundsMS []float64 `json:"bounds_ms"`
	Counts   []uint64  `json:"counts"`
}

// Validate reports whether h follows the schema: strictly increasing
// positive bounds and one more count than bounds (or no counts at all).
func (h Histogram) Validate() error {
	if len(h.Counts) == 0 && len(h.BoundsMS) == 0 {
		return nil
	}
	if len(h.Counts) != len(h.BoundsMS)+1 {
		return fmt.Errorf("%w: latency has %d counts for %d bounds, want %d", ErrInvalid, len(h.Counts), len(h.BoundsMS), len(h.BoundsMS)+1)
	}
	for i, b := range h.BoundsMS {
		if !(b > 0) || (i > 0 && b <= h.BoundsMS[i-1]) {
			return fmt.Errorf("%w: latency bounds_ms %v are not strictly increasing and positive", ErrInvalid, h.BoundsMS)
		}
	}
	return nil
}

// Total is the number of values in h.
func (h Histogram) Total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Validate reports whether s follows the schema.
func (s *Snapshot) Validate() error {
	if s.Service == "" || s.ID == "" {
		return fmt.Errorf("%w: no service or id", ErrInvalid)
	}
	if s.Now.IsZero() {
		return fmt.Errorf("%w: %s/%s: no now", ErrInvalid, s.Service, s.ID)
	}
	for _, list := range [][]Edge{s.Inbound, s.Outbound} {
		for _, e := range list {
			if e.Errors > e.Requests {
				return fmt.Errorf("%w: %s/%s: %d errors of %d requests", ErrInvalid, s.Service, s.ID, e.Errors, e.Requests)
			}
			if err := e.Latency.Validate(); err != nil {
				return fmt.Errorf("%s/%s: %w", s.Service, s.ID, err)
			}
		}
	}
	return nil
}

// statsResponse is the part of a micro $SRV.STATS answer meshstat reads.
type statsResponse struct {
	Type      string    `json:"type"`
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Started   time.Time `json:"started"`
	Endpoints []struct {
		Subject     string `json:"subject"`
		NumRequests uint64 `json:"num_requests"`
		NumErrors   uint64 `json:"num_errors"`
	} `json:"endpoints"`
	Natsmesh *Snapshot `json:"natsmesh"`
}

// Decode reads one $SRV.STATS answer. An answer with a "natsmesh" field
// gives that snapshot; a plain micro service's answer gives a snapshot of
// kind micro whose one inbound edge (caller "", proto "nats") sums its
// endpoints' counters, taken at now. Errors wrap ErrInvalid.
func Decode(data []byte, now time.Time) (Snapshot, error) {
	var r statsResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return Snapshot{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if r.Natsmesh != nil {
		s := *r.Natsmesh
		if s.ID == "" {
			s.ID = r.ID
		}
		if s.Service == "" {
			s.Service = r.Name
		}
		return s, s.Validate()
	}
	s := Snapshot{Service: r.Name, ID: r.ID, Kind: KindMicro, Serving: true, Started: r.Started, Now: now}
	e := Edge{Proto: "nats"}
	for _, ep := range r.Endpoints {
		s.Endpoints = append(s.Endpoints, ep.Subject)
		e.Requests += ep.NumRequests
		e.Errors += min(ep.NumErrors, ep.NumRequests)
	}
	e.Latency.Counts = []uint64{e.Requests}
	s.Inbound = []Edge{e}
	return s, s.Validate()
}
