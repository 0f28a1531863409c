package meshgrpc

import (
	"net/http"
	"strings"
)

// Dispatch returns the handler of an HTTP listener that serves gRPC
// clients too: a gRPC call among its requests ([IsCall]) goes whole, stream
// and all, to g, and every other request to h, as grpc.Server's ServeHTTP
// documents. g is a grpc.Server (ServeHTTP) with a [Proxy]'s
// ServerOptions, so one port serves gRPC and HTTP clients alike, over one
// HTTP/2 connection if they like; h's wrappers (an HTTP body deadline)
// stay out of a call that bounds itself.
func Dispatch(g, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsCall(r) {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// IsCall reports whether r is a gRPC call: an HTTP/2 POST whose
// Content-Type is application/grpc, alone or with a codec
// (application/grpc+proto) or parameters, as grpc-go reads it. gRPC-Web
// (application/grpc-web) is not: it is HTTP/1.1's.
func IsCall(r *http.Request) bool {
	if r.ProtoMajor != 2 || r.Method != http.MethodPost {
		return false
	}
	rest, ok := strings.CutPrefix(r.Header.Get("Content-Type"), "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}
