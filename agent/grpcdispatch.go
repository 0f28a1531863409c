package agent

import (
	"net/http"
	"strings"

	"github.com/natsmesh/natsmesh/meshgrpc"
)

// grpcProxy is the agent's gRPC proxy: its outbound pipeline, its service
// as the caller, its domains and limits. A nil resolve routes each call by
// its :authority; a bind port's names its one destination.
func (a *Agent) grpcProxy(resolve func(authority string) (service, subset string, err error)) *meshgrpc.Proxy {
	return &meshgrpc.Proxy{Sender: a.send, Caller: a.cfg.Service, Limits: a.limitsNow, Domains: a.cfg.Domains, Resolve: resolve}
}

// grpcOrHTTP serves the gRPC calls among the requests of an HTTP listener
// with g (a grpc.Server's ServeHTTP, with a meshgrpc.Proxy as its handler
// of every method), and every other request with h, as grpc.Server's
// ServeHTTP documents: one port serves gRPC and HTTP clients alike, over
// one HTTP/2 connection if they like. g takes the whole call, stream and
// all, and h's wrappers (the HTTP guard's body deadline) stay out of a
// call that bounds itself (deadlines, the proxy's own waits).
//
// A gRPC call is an HTTP/2 POST whose Content-Type is application/grpc,
// alone or with a codec (application/grpc+proto) or parameters, as grpc-go
// reads it; gRPC-Web (application/grpc-web) is HTTP/1.1's, served by h.
func grpcOrHTTP(g, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && r.Method == http.MethodPost && isGRPC(r.Header.Get("Content-Type")) {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isGRPC reports whether a Content-Type is gRPC's.
func isGRPC(contentType string) bool {
	rest, ok := strings.CutPrefix(contentType, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}
