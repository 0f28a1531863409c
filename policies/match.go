package policies

import (
	"net/textproto"
	"slices"
	"strings"
)

// Protocols of a MatchInput.
const (
	ProtoHTTP = "http"
	ProtoGRPC = "grpc"
)

// MatchInput describes one call for [File.MatchRoute].
type MatchInput struct {
	// Proto is ProtoHTTP or ProtoGRPC.
	Proto string
	// Method and Path are the HTTP method and path (HTTP calls).
	Method, Path string
	// Header holds the HTTP headers or gRPC metadata, as an http.Header or
	// metadata.MD would (either key spelling is found). Nil: none.
	Header map[string][]string
	// GRPCMethod is the full gRPC method, "pkg.Svc/Method" (a leading "/"
	// is ignored).
	GRPCMethod string
}

// MatchRoute returns the first route of service that matches in, and
// false if none does (then the service's own policy applies).
func (f *File) MatchRoute(service string, in MatchInput) (*Route, bool) {
	if f == nil {
		return nil, false
	}
	s := f.Services[service]
	if s == nil {
		return nil, false
	}
	for i := range s.Routes {
		if s.Routes[i].Match.Matches(in) {
			return &s.Routes[i], true
		}
	}
	return nil, false
}

// Matches reports whether the call in meets every condition of m.
func (m *Match) Matches(in MatchInput) bool {
	if m.GRPC != "" {
		if in.Proto != ProtoGRPC || !grpcMethodMatch(m.GRPC, strings.TrimPrefix(in.GRPCMethod, "/")) {
			return false
		}
	}
	if m.PathPrefix != "" || len(m.Methods) > 0 {
		if in.Proto != ProtoHTTP {
			return false
		}
		if m.PathPrefix != "" && !PathHasPrefix(in.Path, m.PathPrefix) {
			return false
		}
		if len(m.Methods) > 0 && !slices.Contains(m.Methods, in.Method) {
			return false
		}
	}
	for k, want := range m.Headers {
		if headerValue(in.Header, k) != want {
			return false
		}
	}
	return true
}

// PathHasPrefix reports whether path is prefix or below it, segment-wise:
// "/api" has prefix "/api" and "/api/x" has, "/apix" has not; a prefix
// ending in "/" matches everything below it ("/api/" matches "/api/x" but
// not "/api").
func PathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// grpcMethodMatch matches "pkg.Svc/Method" exactly, or "pkg.Svc/*" for any
// method of the service.
func grpcMethodMatch(pattern, method string) bool {
	if svc, ok := strings.CutSuffix(pattern, "/*"); ok {
		s, _, found := strings.Cut(method, "/")
		return found && s == svc
	}
	return pattern == method
}

// headerValue returns the first value of the header named name, whether h
// keys it canonically (http.Header) or in lower case (gRPC metadata).
func headerValue(h map[string][]string, name string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	if v := h[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// idempotentMethods are the HTTP methods RFC 9110 section 9.2.2 defines
// as idempotent.
var idempotentMethods = []string{"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}

// IdempotentMethod reports whether an HTTP method is idempotent by RFC
// 9110, so a call with it may be retried after a 5xx or hedged.
func IdempotentMethod(method string) bool { return slices.Contains(idempotentMethods, method) }
