package authz

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

// Request is what a decision reads of one call.
type Request struct {
	// Caller is the calling service (or the bridge's name).
	Caller string
	// Service is the called service.
	Service string
	// Proto is the call's protocol.
	Proto wire.Proto
	// Op is the HTTP method, or the full gRPC method ("/pkg.Svc/Method",
	// a leading "/" optional).
	Op string
	// Path is the escaped HTTP path as it travels (Mesh-Path); "" for
	// gRPC.
	Path string
}

// Check reports whether f allows r: nil, or a *wire.Error of
// wire.KindForbidden saying why not. A nil f allows everything (no mesh
// file: no allow lists).
func Check(f *policies.File, r Request) error {
	if f == nil {
		return nil
	}
	callee := f.Services[r.Service]
	calleeAcct := policies.DefaultAccount
	if callee != nil && callee.Account != "" {
		calleeAcct = callee.Account
	}
	callerAcct := policies.DefaultAccount
	if s := f.Services[r.Caller]; s != nil && s.Account != "" {
		callerAcct = s.Account
	}
	if callerAcct != calleeAcct && !exported(f, calleeAcct, r.Service, callerAcct) {
		return forbidden(r, "account %q does not export it to account %q", calleeAcct, callerAcct)
	}
	if callee == nil || callee.Allow == nil {
		if f.Allow == policies.AllowDeny {
			return forbidden(r, "it has no allow list and the mesh file's allow is deny")
		}
		return nil
	}
	var canon string
	var canonErr error
	canonDone := false
	for _, rule := range callee.Allow {
		if rule.Caller != r.Caller || !methodMatch(rule.Methods, r) {
			continue
		}
		if len(rule.Paths) == 0 {
			return nil
		}
		if r.Proto != wire.ProtoHTTP {
			continue
		}
		if !canonDone {
			canon, canonErr = CanonicalPath(r.Path)
			canonDone = true
		}
		if canonErr != nil {
			continue
		}
		for _, p := range rule.Paths {
			if policies.PathHasPrefix(canon, p) {
				return nil
			}
		}
	}
	if canonErr != nil {
		return forbidden(r, "the path matches no path rule: %v", canonErr)
	}
	return forbidden(r, "its allow list admits no such call from %s", r.Caller)
}

func exported(f *policies.File, account, service, to string) bool {
	a := f.Accounts[account]
	if a == nil {
		return false
	}
	for _, e := range a.Exports {
		if e.Service == service && slices.Contains(e.To, to) {
			return true
		}
	}
	return false
}

func methodMatch(methods []string, r Request) bool {
	if len(methods) == 0 {
		return true
	}
	switch r.Proto {
	case wire.ProtoHTTP:
		return slices.Contains(methods, r.Op)
	case wire.ProtoGRPC:
		full := strings.TrimPrefix(r.Op, "/")
		for _, m := range methods {
			m = strings.TrimPrefix(m, "/")
			if svc, ok := strings.CutSuffix(m, "/*"); ok {
				if s, _, found := strings.Cut(full, "/"); found && s == svc {
					return true
				}
			} else if m == full {
				return true
			}
		}
	}
	return false
}

func forbidden(r Request, format string, v ...any) error {
	what := r.Op
	if r.Proto == wire.ProtoHTTP && r.Path != "" {
		what += " " + r.Path
	}
	return &wire.Error{Kind: wire.KindForbidden, Message: fmt.Sprintf("%s may not call %s (%.128s): %s",
		r.Caller, r.Service, what, fmt.Sprintf(format, v...))}
}

// ErrNoCanonicalPath is wrapped by the errors of CanonicalPath.
var ErrNoCanonicalPath = errors.New("authz: path has no canonical form")

// CanonicalPath returns the path that an escaped HTTP path p names once
// decoded and cleaned, the form path rules are matched on: percent escapes
// decoded once (%2F included: servers differ on whether it separates
// segments, so it is taken to), "\" read as "/", empty, "." and ".."
// segments resolved (never above the root), a trailing "/" kept (as
// net/http's ServeMux cleans a path). It fails
// (wrapping ErrNoCanonicalPath) for a path that does not start with "/",
// that holds "?" or "#", a control byte (escaped or not: %00 included),
// an invalid escape, or an escape that decodes to another escape (%252F),
// which a server that decodes twice would read differently.
func CanonicalPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %.64q does not start with /", ErrNoCanonicalPath, p)
	}
	d := p
	if strings.ContainsAny(p, "%\\") {
		var b strings.Builder
		b.Grow(len(p))
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c == '%' {
				if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
					return "", fmt.Errorf("%w: %.64q has an invalid escape", ErrNoCanonicalPath, p)
				}
				c = unhex(p[i+1])<<4 | unhex(p[i+2])
				i += 2
			} else if c == '?' || c == '#' {
				return "", fmt.Errorf("%w: %.64q holds %q", ErrNoCanonicalPath, p, c)
			}
			if err := checkByte(p, c); err != nil {
				return "", err
			}
			if c == '\\' {
				c = '/'
			}
			b.WriteByte(c)
		}
		d = b.String()
		for i := 0; i+2 < len(d); i++ {
			if d[i] == '%' && isHex(d[i+1]) && isHex(d[i+2]) {
				return "", fmt.Errorf("%w: %.64q is escaped twice", ErrNoCanonicalPath, p)
			}
		}
	} else {
		// Nothing to decode: the path is read as it is, without a copy.
		for i := 0; i < len(p); i++ {
			if c := p[i]; c == '?' || c == '#' {
				return "", fmt.Errorf("%w: %.64q holds %q", ErrNoCanonicalPath, p, c)
			} else if err := checkByte(p, c); err != nil {
				return "", err
			}
		}
	}
	// Path parameters (RFC 3986 section 3.3): servers such as Tomcat and
	// Spring drop ";..." from each segment before resolving dot segments,
	// so "/public/..;/admin" names /admin there. A segment that is a dot
	// segment once its parameters are dropped has no canonical form here.
	for seg := range strings.SplitSeq(d, "/") {
		if name, _, ok := strings.Cut(seg, ";"); ok && (name == "." || name == "..") {
			return "", fmt.Errorf("%w: %.64q has a dot segment with parameters", ErrNoCanonicalPath, p)
		}
	}
	clean := path.Clean(d)                         // no copy when d is clean already
	if clean != "/" && strings.HasSuffix(d, "/") { // as net/http's cleanPath
		if len(d) == len(clean)+1 && d[:len(clean)] == clean {
			return d, nil
		}
		clean += "/"
	}
	return clean, nil
}

// checkByte refuses a control byte of p (decoded or not).
func checkByte(p string, c byte) error {
	if c < 0x20 || c == 0x7f {
		return fmt.Errorf("%w: %.64q holds a control byte", ErrNoCanonicalPath, p)
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
