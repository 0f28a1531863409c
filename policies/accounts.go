package policies

import (
	"maps"
	"slices"
	"strings"

	"github.com/natsmesh/natsmesh/accounts"
)

// AccountsSpec converts the file's accounts, exports and allow lists into
// the model package accounts generates NATS authorization from (the
// mapping is on [accounts.Spec]). The result is deterministic: services
// and accounts in name order, exports and allow rules in file order, and
// each rule's methods normalized (see normalizeMethods). A nil f gives the
// zero Spec.
func (f *File) AccountsSpec() accounts.Spec {
	var s accounts.Spec
	if f == nil {
		return s
	}
	if f.Allow == AllowDeny {
		s.Default = accounts.Deny
	}
	for _, name := range slices.Sorted(maps.Keys(f.Accounts)) {
		a := accounts.Account{Name: name}
		for _, e := range f.Accounts[name].Exports {
			a.Exports = append(a.Exports, accounts.Export{Service: e.Service, To: slices.Clone(e.To)})
		}
		s.Accounts = append(s.Accounts, a)
	}
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		svc := f.Services[name]
		out := accounts.Service{Name: name, Subsets: slices.Clone(svc.Subsets)}
		if svc.Account != DefaultAccount {
			out.Account = svc.Account
		}
		if svc.Allow != nil {
			out.Allow = make([]accounts.Rule, 0, len(svc.Allow))
		}
		for _, r := range svc.Allow {
			out.Allow = append(out.Allow, accounts.Rule{
				Caller:  r.Caller,
				Methods: normalizeMethods(r.Methods),
				Paths:   slices.Clone(r.Paths),
			})
		}
		s.Services = append(s.Services, out)
	}
	return s
}

// normalizeMethods drops a gRPC method's leading "/" (grpc-go's full method
// name is "/pkg.Svc/Method"; the mesh file writes "pkg.Svc/Method"), then
// sorts and deduplicates, so that one permission is generated per method.
func normalizeMethods(ms []string) []string {
	if len(ms) == 0 {
		return nil
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		m = strings.TrimSpace(m)
		if strings.Contains(m, "/") {
			m = strings.TrimPrefix(m, "/")
		}
		out = append(out, m)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
