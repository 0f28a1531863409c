package policies

// DefaultAccount is the account of a service that names none.
const DefaultAccount = "mesh"

// BridgeCaller is the caller name of the edge gateway, which an allow list
// may name like a service.
const BridgeCaller = "bridge"

// Mesh-wide authorization defaults (File.Allow).
const (
	AllowAll  = "all"
	AllowDeny = "deny"
)

// File is one mesh file: the whole mesh's services, accounts and policies.
// Parse returns it validated, with the defaults of Inbound's parts filled
// in; treat it as read-only afterwards.
type File struct {
	// Version is the schema version. Required; must be 1.
	Version int `yaml:"version" json:"version"`
	// Allow is who may call a service that has no allow list: AllowAll
	// (any service) or AllowDeny (nobody). Default AllowAll.
	Allow string `yaml:"allow" json:"allow,omitempty"`
	// Defaults is the Policy under every service's own. Default: the
	// built-in values of BuiltinPolicy. It may not split or mirror, since
	// those name one service's subsets.
	Defaults *Policy `yaml:"defaults" json:"defaults,omitempty"`
	// Accounts are the NATS accounts services live in, by name. The
	// account DefaultAccount exists without being listed. Default: none.
	Accounts map[string]*Account `yaml:"accounts" json:"accounts,omitempty"`
	// Services are the meshed services by name. Default: none.
	Services map[string]*Service `yaml:"services" json:"services,omitempty"`
	// Egress governs calls to hosts outside the mesh. Default (nil): any
	// host may be called (EgressAllowAny), none is listed.
	Egress *Egress `yaml:"egress" json:"egress,omitempty"`
}

// Account is a NATS account: services in different accounts are isolated
// unless one exports a service and the other imports it.
type Account struct {
	// Exports are the services of this account other accounts may call.
	// Default: none.
	Exports []Export `yaml:"exports" json:"exports,omitempty"`
}

// Export makes one service callable from other accounts.
type Export struct {
	// Service is a service of the exporting account. Required.
	Service string `yaml:"service" json:"service"`
	// To lists the accounts that may import it. Required, not empty.
	// Calls from them are still subject to the service's allow list.
	To []string `yaml:"to" json:"to"`
}

// Service is one meshed service.
type Service struct {
	// Account is the account the service's connections belong to.
	// Default DefaultAccount.
	Account string `yaml:"account" json:"account,omitempty"`
	// Subsets are the subsets (versions, labels) its instances may run as;
	// splits, routes and mirrors may only name these. Default: none.
	Subsets []string `yaml:"subsets" json:"subsets,omitempty"`
	// Allow lists who may call the service. Nil (absent): the file's Allow
	// decides. Present, even empty: only the callers listed may.
	Allow []Allow `yaml:"allow" json:"allow,omitzero"`
	// Inbound is enforced by the service's own agents. Default: no limits.
	Inbound *Inbound `yaml:"inbound" json:"inbound,omitempty"`
	// Policy governs calls to the service (on the caller's side) that match
	// no route, and is the base of each route's policy. Default: none, so
	// the file's defaults apply.
	Policy *Policy `yaml:"policy" json:"policy,omitempty"`
	// Routes are tried in order; the first that matches a call decides its
	// split and policy. Default: none.
	Routes []Route `yaml:"routes" json:"routes,omitempty"`
}

// Allow lets one caller call a service, optionally only some methods and
// paths.
type Allow struct {
	// Caller is a service name or BridgeCaller. Required.
	Caller string `yaml:"caller" json:"caller"`
	// Methods are HTTP methods ("GET") or gRPC methods ("pkg.Svc/Method",
	// "pkg.Svc/*"). Default: any.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Paths are HTTP path prefixes, matched segment-wise as in
	// Match.PathPrefix. Default: any.
	Paths []string `yaml:"paths" json:"paths,omitempty"`
}

// Inbound is what a service's own agents enforce on the calls they
// receive.
type Inbound struct {
	// MaxConcurrent bounds the calls one instance handles at once; more
	// are refused as overloaded. Default 0: no bound.
	MaxConcurrent int `yaml:"max_concurrent" json:"max_concurrent,omitempty"`
	// RateLimit bounds each caller's rate. Default: none.
	RateLimit *RateLimit `yaml:"rate_limit" json:"rate_limit,omitempty"`
	// PassiveHealth ejects failing instances from their queue groups.
	// Default: none.
	PassiveHealth *PassiveHealth `yaml:"passive_health" json:"passive_health,omitempty"`
}

// RateLimit allows each caller PerCaller calls every Per, with bursts of up
// to Burst more; calls over the limit get 429 with Retry-After.
type RateLimit struct {
	// PerCaller is the number of calls allowed per Per. Required, positive.
	PerCaller int `yaml:"per_caller" json:"per_caller"`
	// Per is the period of PerCaller. Default 1s.
	Per Duration `yaml:"per" json:"per"`
	// Burst is how many calls beyond the rate may come at once. Default 0.
	Burst int `yaml:"burst" json:"burst,omitempty"`
}

// PassiveHealth is outlier detection: an instance whose calls fail too
// often withdraws from its queue groups for a while.
type PassiveHealth struct {
	// FailureRatio is the share of calls (5xx or connection errors) over
	// Window that ejects an instance. Default 50%.
	FailureRatio Percent `yaml:"failure_ratio" json:"failure_ratio"`
	// Window is the period failures are counted over. Default 10s.
	Window Duration `yaml:"window" json:"window"`
	// MinRequests is how many calls Window must hold before an instance can
	// be ejected. Default 20.
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// CoolOff is how long an ejected instance stays out. Default 30s.
	CoolOff Duration `yaml:"cool_off" json:"cool_off"`
	// MaxEjected is the largest share of a service's instances that may be
	// out at once; an instance does not leave beyond it. Default 50%.
	MaxEjected Percent `yaml:"max_ejected" json:"max_ejected"`
}

// Route is a class of calls to a service with its own split and policy.
type Route struct {
	// Name identifies the route in File.Policy, metrics and logs: a name
	// like a service's, unique within the service. Required.
	Name string `yaml:"name" json:"name"`
	// Match selects the calls. Default: every call.
	Match Match `yaml:"match" json:"match,omitzero"`
	// Split spreads the route's calls over subsets by weight (summing to
	// 100). Default: the merged policy's split, else any instance.
	Split map[string]int `yaml:"split" json:"split,omitempty"`
	// Policy is merged over the service's policy. Default: none.
	Policy *Policy `yaml:"policy" json:"policy,omitempty"`
}

// Match selects calls; every condition given must hold. The zero Match
// matches every call.
type Match struct {
	// PathPrefix matches HTTP paths segment-wise: "/api" matches "/api"
	// and "/api/x" but not "/apix"; a prefix ending in "/" matches
	// everything below it. Default: any path.
	PathPrefix string `yaml:"path_prefix" json:"path_prefix,omitempty"`
	// Methods are HTTP methods, matched exactly. Default: any.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Headers must each be present with exactly this value (names are
	// case-insensitive). For gRPC calls they are metadata. Default: none.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// GRPC matches gRPC calls by "pkg.Svc/Method" or "pkg.Svc/*". A route
	// with GRPC set matches only gRPC calls, one with PathPrefix or Methods
	// only HTTP calls. Default: any.
	GRPC string `yaml:"grpc" json:"grpc,omitempty"`
}
