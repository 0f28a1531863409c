package policies

import (
	"maps"
	"reflect"
	"time"
)

// Policy governs the calls to one service or route, on the caller's side.
// It appears at three levels (the file's defaults, a service's policy, a
// route's policy), and [File.Policy] merges them field by field: a field
// set (non-nil) at a level wins over the levels below. Parts marked "as a
// whole" replace the part below instead of merging into it.
//
// Each field's comment gives its built-in default (see BuiltinPolicy).
type Policy struct {
	// Timeout bounds the whole call, all attempts included; the remaining
	// time travels with the call as its deadline. Default 30s.
	Timeout *Duration `yaml:"timeout" json:"timeout,omitempty"`
	// AttemptTimeout bounds each attempt. Default 0: only Timeout.
	AttemptTimeout *Duration `yaml:"attempt_timeout" json:"attempt_timeout,omitempty"`
	// Idempotent marks the calls safe to repeat whatever their method, so
	// 5xx replies and timeouts are retried and calls may be hedged.
	// Default false: only GET, HEAD, OPTIONS, TRACE, PUT and DELETE are.
	Idempotent *bool `yaml:"idempotent" json:"idempotent,omitempty"`
	// Retries says how often and how fast to try again.
	Retries *Retries `yaml:"retries" json:"retries,omitempty"`
	// CircuitBreaker stops calling a destination that keeps failing.
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker" json:"circuit_breaker,omitempty"`
	// Bulkhead bounds the calls in flight to a destination.
	Bulkhead *Bulkhead `yaml:"bulkhead" json:"bulkhead,omitempty"`
	// Hedge sends a second copy of a slow call (as a whole). Default: none.
	// Only for idempotent calls.
	Hedge *Hedge `yaml:"hedge" json:"hedge,omitempty" merge:"whole"`
	// Split spreads calls over subsets by weight, summing to 100 (as a
	// whole). Default: none, any instance. Not allowed in the defaults.
	Split map[string]int `yaml:"split" json:"split,omitempty"`
	// Mirror sends a copy of some calls elsewhere and ignores its reply
	// (as a whole). Default: none. Not allowed in the defaults.
	Mirror *Mirror `yaml:"mirror" json:"mirror,omitempty" merge:"whole"`
	// Fault injects delays and errors, for testing. Default: none.
	Fault *Fault `yaml:"fault" json:"fault,omitempty"`
}

// Retries are the retry policy. Retries for no-responders and overloaded
// replies are always safe; 5xx replies and timeouts are retried only for
// idempotent calls.
type Retries struct {
	// Attempts is the total number of attempts, the first included; 1
	// means no retries. Default 3.
	Attempts *int `yaml:"attempts" json:"attempts,omitempty"`
	// Backoff is the delay before the first retry; it doubles each time.
	// Default 25ms.
	Backoff *Duration `yaml:"backoff" json:"backoff,omitempty"`
	// MaxBackoff caps the delay. Default 250ms.
	MaxBackoff *Duration `yaml:"max_backoff" json:"max_backoff,omitempty"`
	// Jitter randomizes each delay by up to this share. Default 20%.
	Jitter *Percent `yaml:"jitter" json:"jitter,omitempty"`
	// Budget caps retries at this share of the calls to a destination, so
	// retries cannot multiply an overload. Default 20%.
	Budget *Percent `yaml:"budget" json:"budget,omitempty"`
	// MinPerSecond is a floor of retries per second the budget always
	// allows. Default 10.
	MinPerSecond *int `yaml:"min_per_second" json:"min_per_second,omitempty"`
}

// CircuitBreaker is a breaker per destination (service and subset).
type CircuitBreaker struct {
	// Enabled turns the breaker on or off. Default true.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// FailureRatio is the share of failed calls over Window that opens the
	// breaker. Default 50%.
	FailureRatio *Percent `yaml:"failure_ratio" json:"failure_ratio,omitempty"`
	// Window is the period calls are counted over. Default 10s.
	Window *Duration `yaml:"window" json:"window,omitempty"`
	// MinRequests is how many calls Window must hold before the breaker
	// may open. Default 20.
	MinRequests *int `yaml:"min_requests" json:"min_requests,omitempty"`
	// OpenFor is how long the breaker stays open before it lets probes
	// through (half-open). Default 5s.
	OpenFor *Duration `yaml:"open_for" json:"open_for,omitempty"`
	// HalfOpenProbes is how many calls probe a half-open breaker; all must
	// succeed to close it. Default 3.
	HalfOpenProbes *int `yaml:"half_open_probes" json:"half_open_probes,omitempty"`
}

// Bulkhead bounds the concurrency of outbound calls per destination.
type Bulkhead struct {
	// MaxConcurrent is the most calls in flight; more fail at once as
	// overloaded. Default 0: no bound.
	MaxConcurrent *int `yaml:"max_concurrent" json:"max_concurrent,omitempty"`
}

// Hedge sends another attempt when the first is slow and takes the first
// reply. Exactly one of Delay and Percentile is set.
type Hedge struct {
	// Delay is how long to wait for a reply before hedging.
	Delay *Duration `yaml:"delay" json:"delay,omitempty"`
	// Percentile hedges after the destination's observed latency at this
	// percentile (0 < p < 100).
	Percentile *float64 `yaml:"percentile" json:"percentile,omitempty"`
	// Max is the most extra attempts per call. Default 1.
	Max *int `yaml:"max" json:"max,omitempty"`
}

// Mirror copies a share of the calls to another service or subset.
type Mirror struct {
	// To is "SERVICE" or "SERVICE@SUBSET". Required.
	To string `yaml:"to" json:"to"`
	// Percent is the share of calls copied. Default 100%.
	Percent *Percent `yaml:"percent" json:"percent,omitempty"`
}

// Fault injects failures into a share of calls, before they are sent.
type Fault struct {
	// Delay holds calls back (as a whole). Default: none.
	Delay *FaultDelay `yaml:"delay" json:"delay,omitempty" merge:"whole"`
	// Abort fails calls without sending them (as a whole). Default: none.
	Abort *FaultAbort `yaml:"abort" json:"abort,omitempty" merge:"whole"`
}

// FaultDelay delays Percent of the calls by Duration.
type FaultDelay struct {
	// Percent is the share of calls delayed. Required.
	Percent Percent `yaml:"percent" json:"percent"`
	// Duration is the delay. Required, positive.
	Duration Duration `yaml:"duration" json:"duration"`
}

// FaultAbort fails Percent of the calls, either with an HTTP status or
// with a mesh error; exactly one of Status and Error is set.
type FaultAbort struct {
	// Percent is the share of calls aborted. Required.
	Percent Percent `yaml:"percent" json:"percent"`
	// Status is an HTTP status, 400-599.
	Status int `yaml:"status" json:"status,omitempty"`
	// Error is a mesh error kind: no-responders, timeout, circuit-open,
	// overloaded, forbidden or too-large.
	Error string `yaml:"error" json:"error,omitempty"`
}

// MeshErrors are the mesh error kinds a fault may abort with.
var meshErrors = []string{"no-responders", "timeout", "circuit-open", "overloaded", "forbidden", "too-large"}

// BuiltinPolicy returns the policy under every file's defaults: each field
// that has a default is set to it, so every field of a merged policy but
// Hedge, Split, Mirror and Fault is non-nil.
func BuiltinPolicy() Policy {
	return Policy{
		Timeout:        ptr(Duration(30 * time.Second)),
		AttemptTimeout: ptr(Duration(0)),
		Idempotent:     ptr(false),
		Retries: &Retries{
			Attempts:     ptr(3),
			Backoff:      ptr(Duration(25 * time.Millisecond)),
			MaxBackoff:   ptr(Duration(250 * time.Millisecond)),
			Jitter:       ptr(Percent(20)),
			Budget:       ptr(Percent(20)),
			MinPerSecond: ptr(10),
		},
		CircuitBreaker: &CircuitBreaker{
			Enabled:        ptr(true),
			FailureRatio:   ptr(Percent(50)),
			Window:         ptr(Duration(10 * time.Second)),
			MinRequests:    ptr(20),
			OpenFor:        ptr(5 * Duration(time.Second)),
			HalfOpenProbes: ptr(3),
		},
		Bulkhead: &Bulkhead{MaxConcurrent: ptr(0)},
	}
}

// Policy returns the policy of calls to service that match the route
// named route (or no route, when route is ""): the built-in defaults, the
// file's defaults, the service's policy and the route's policy, merged in
// that order. A route's Split wins over every policy's. An unknown service
// or route contributes nothing. The result shares nothing with f.
func (f *File) Policy(service, route string) Policy {
	p := BuiltinPolicy()
	if f == nil {
		return p
	}
	merge(&p, f.Defaults)
	s := f.Services[service]
	if s == nil {
		return p
	}
	merge(&p, s.Policy)
	if route == "" {
		return p
	}
	for i := range s.Routes {
		if r := &s.Routes[i]; r.Name == route {
			merge(&p, r.Policy)
			if r.Split != nil {
				p.Split = maps.Clone(r.Split)
			}
			break
		}
	}
	return p
}

// merge sets every field src sets over dst, recursing into parts (pointers
// to structs) unless they are tagged merge:"whole".
func merge(dst, src *Policy) {
	if src == nil {
		return
	}
	mergeStruct(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem())
}

func mergeStruct(dst, src reflect.Value) {
	t := src.Type()
	for i := range t.NumField() {
		s, d := src.Field(i), dst.Field(i)
		if s.IsZero() {
			continue
		}
		if s.Kind() == reflect.Pointer && s.Elem().Kind() == reflect.Struct && t.Field(i).Tag.Get("merge") != "whole" {
			if d.IsNil() {
				d.Set(reflect.New(s.Elem().Type()))
			}
			mergeStruct(d.Elem(), s.Elem())
			continue
		}
		d.Set(deepCopy(s))
	}
}

// deepCopy copies v so that the copy shares no pointer or map with it.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Elem().Type())
		c.Elem().Set(deepCopy(v.Elem()))
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			c.Field(i).Set(deepCopy(v.Field(i)))
		}
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	}
	return v
}

func ptr[T any](v T) *T { return &v }
