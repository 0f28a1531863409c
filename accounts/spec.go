package accounts

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/natsmesh/natsmesh/wire"
)

// ErrSpec is wrapped by every error Validate (and so Generate) returns for
// a Spec that cannot be turned into permissions.
var ErrSpec = errors.New("accounts: invalid spec")

// Names the generated configuration reserves.
const (
	// DefaultAccount holds every service that names no account, and the
	// bridge.
	DefaultAccount = "mesh"
	// StoreAccount holds the policy store: it is the only account with
	// JetStream (the policies bucket lives there), and its only user is
	// the admin. It exports the bucket read-only (the stream of its
	// messages and the direct get of a key) and discovery requests to
	// every service account, which export the admin's discovery answers
	// back. No user of a service account reaches any other JetStream API.
	StoreAccount = "STORE"
	// SystemAccount is the NATS system account; its one user is "sys".
	SystemAccount = "SYS"
	// Bridge is the caller name and user of the edge gateway.
	Bridge = "bridge"
	// DefaultAdmin is the admin user's name when Spec.Admin is empty.
	DefaultAdmin = "admin"
	// SysUser is the user of the system account.
	SysUser = "sys"
	// PoliciesBucket is the JetStream KV bucket agents watch for policies.
	PoliciesBucket = "natsmesh-policies"
)

// Default is the mesh-wide authorization default for services that declare
// no allow list (the mesh file's top-level `allow`).
type Default int

const (
	// Allow lets every service (and the bridge) call a service that has
	// no allow list. It is the zero value, as in the mesh file.
	Allow Default = iota
	// Deny lets nobody call a service that has no allow list.
	Deny
)

// Spec is what the account configuration is generated from: the accounts,
// exports and allow lists of the mesh file. It is independent of the YAML;
// the mesh file's model converts to it with policies.File.AccountsSpec:
//
//	mesh file            Spec
//	allow: all|deny      Default (Allow, Deny)
//	accounts.<n>         Accounts[i].Name
//	  exports            Accounts[i].Exports (Service, To)
//	services.<n>         Services[i].Name
//	  account            Services[i].Account ("" = DefaultAccount)
//	  subsets            Services[i].Subsets
//	  allow              Services[i].Allow (nil = Default; empty = nobody)
//
// Names are DNS labels ([wire.ValidateName]). Service names are global
// across accounts: a caller token names one service in the whole mesh.
type Spec struct {
	// Default applies to services whose Allow is nil. Default Allow.
	Default Default
	// Accounts lists the accounts besides DefaultAccount, which always
	// exists (declaring it here is allowed, to give it exports).
	Accounts []Account
	// Services lists every service of the mesh.
	Services []Service
	// Admin names the admin user (for `natsmesh policy apply` and `stat`),
	// the one user of StoreAccount.
	// Default "admin". It is no service's name.
	Admin string
}

// Account is one NATS account: an isolation boundary between teams or
// tenants. Its services are called from other accounts only through
// exports.
type Account struct {
	Name string
	// Exports are the services of this account that other accounts may
	// call.
	Exports []Export
}

// Export makes one service of an account callable from other accounts.
type Export struct {
	// Service is a service of the exporting account.
	Service string
	// To lists the accounts that import it. Calls from them are still
	// subject to the service's allow list.
	To []string
}

// Service is one service of the mesh and who may call it.
type Service struct {
	Name string
	// Account is the service's account. Default DefaultAccount.
	Account string
	// Subsets are the subsets that exist. An instance may serve only
	// these (and the any-subset subject): the broker refuses a
	// subscription for an undeclared subset, none declared included.
	Subsets []string
	// Allow lists who may call the service. nil means the Spec's Default;
	// an empty non-nil list means nobody.
	Allow []Rule
}

// Rule admits one caller, optionally for some methods and paths only.
type Rule struct {
	// Caller is a service name or Bridge.
	Caller string
	// Methods are HTTP methods ("GET") or gRPC methods ("pkg.Svc/Method",
	// or "pkg.Svc/*" for every method of a gRPC service). Empty: any.
	// The broker enforces HTTP methods and whole gRPC method names;
	// "pkg.Svc/*" can only be enforced by the broker as "any gRPC method"
	// (a subject token has no prefix wildcard), so the agent narrows it.
	Methods []string
	// Paths are HTTP path prefixes. The broker cannot see paths (they
	// travel in headers): the receiving agent enforces them.
	Paths []string
}

func (s *Spec) admin() string {
	if s.Admin == "" {
		return DefaultAdmin
	}
	return s.Admin
}

func (svc *Service) account() string {
	if svc.Account == "" {
		return DefaultAccount
	}
	return svc.Account
}

func specErr(format string, v ...any) error {
	return fmt.Errorf("accounts: "+format+": %w", append(v, ErrSpec)...)
}

// Validate checks every name and reference in s: unique services and
// accounts, services and callers that exist, exports of services in their
// own account to accounts that exist, and no service named like a reserved
// user. Errors wrap ErrSpec.
func (s *Spec) Validate() error {
	reserved := []string{Bridge, SysUser, s.admin(), "operator"}
	if err := wire.ValidateName("admin", s.admin()); err != nil {
		return specErr("admin: %v", err)
	}
	if s.Default != Allow && s.Default != Deny {
		return specErr("default %d: want Allow or Deny", s.Default)
	}
	accounts := map[string]*Account{DefaultAccount: {Name: DefaultAccount}}
	for i := range s.Accounts {
		a := &s.Accounts[i]
		if err := wire.ValidateName("account", a.Name); err != nil {
			return specErr("%v", err)
		}
		if strings.EqualFold(a.Name, SystemAccount) {
			return specErr("account %q is reserved for the system account", a.Name)
		}
		if strings.EqualFold(a.Name, StoreAccount) {
			return specErr("account %q is reserved for the policy store", a.Name)
		}
		if a.Name != DefaultAccount {
			if _, dup := accounts[a.Name]; dup {
				return specErr("account %q declared twice", a.Name)
			}
		}
		accounts[a.Name] = a
	}
	services := map[string]*Service{}
	for i := range s.Services {
		svc := &s.Services[i]
		if err := wire.ValidateName("service", svc.Name); err != nil {
			return specErr("%v", err)
		}
		if slices.Contains(reserved, svc.Name) {
			return specErr("service %q: the name is reserved for a mesh user", svc.Name)
		}
		if _, dup := services[svc.Name]; dup {
			return specErr("service %q declared twice", svc.Name)
		}
		services[svc.Name] = svc
		if _, ok := accounts[svc.account()]; !ok {
			return specErr("service %q: account %q is not declared", svc.Name, svc.Account)
		}
		for _, sub := range svc.Subsets {
			if err := wire.ValidateName("subset", sub); err != nil {
				return specErr("service %q: %v", svc.Name, err)
			}
		}
	}
	for _, a := range accounts {
		for _, e := range a.Exports {
			svc, ok := services[e.Service]
			if !ok {
				return specErr("account %q exports unknown service %q", a.Name, e.Service)
			}
			if svc.account() != a.Name {
				return specErr("account %q exports %q, which is in account %q", a.Name, e.Service, svc.account())
			}
			if len(e.To) == 0 {
				return specErr("account %q export of %q: no importing accounts", a.Name, e.Service)
			}
			for _, to := range e.To {
				if _, ok := accounts[to]; !ok {
					return specErr("account %q exports %q to undeclared account %q", a.Name, e.Service, to)
				}
				if to == a.Name {
					return specErr("account %q exports %q to itself", a.Name, e.Service)
				}
			}
		}
	}
	for _, svc := range s.Services {
		for _, r := range svc.Allow {
			if r.Caller != Bridge {
				if _, ok := services[r.Caller]; !ok {
					return specErr("service %q allows unknown caller %q", svc.Name, r.Caller)
				}
			}
			for _, m := range r.Methods {
				if _, _, err := methodOp(m); err != nil {
					return specErr("service %q, caller %q: %v", svc.Name, r.Caller, err)
				}
			}
		}
	}
	return nil
}

// methodOp maps a rule's method to the proto and op tokens of the call
// subjects it admits: "GET" is http GET; "pkg.Svc/Method" is grpc with the
// escaped full method name "/pkg.Svc/Method" (what grpc-go passes to
// Invoke); "pkg.Svc/*" is grpc "*".
func methodOp(m string) (proto, op string, err error) {
	if m == "" {
		return "", "", errors.New("empty method")
	}
	svc, method, isGRPC := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	if !isGRPC {
		for i := 0; i < len(m); i++ {
			if c := m[i]; c < 'A' || c > 'Z' {
				return "", "", fmt.Errorf("method %q: want an upper-case HTTP method or pkg.Service/Method", m)
			}
		}
		return string(wire.ProtoHTTP), m, nil
	}
	if svc == "" || method == "" || strings.Contains(method, "/") {
		return "", "", fmt.Errorf("gRPC method %q: want pkg.Service/Method or pkg.Service/*", m)
	}
	if method == "*" {
		return string(wire.ProtoGRPC), "*", nil
	}
	return string(wire.ProtoGRPC), wire.EscapeToken("/" + svc + "/" + method), nil
}
