// Package admin serves the admin endpoint of a mesh component (an agent or
// the edge bridge): liveness, readiness, profiles, and whatever the
// component adds (metrics, its live configuration).
package admin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
)

// Config is what a component exposes on its admin endpoint.
type Config struct {
	// Ready returns nil while the component takes calls, and otherwise why
	// not. Nil means always ready.
	Ready func() error
	// Handlers are further endpoints by pattern ("GET /metrics").
	Handlers map[string]http.Handler
	// Profiles serves Go's profiles at /debug/pprof/. Off by default: a
	// heap profile holds what the process holds (request headers among
	// it), so it is served only when asked for (`--pprof`).
	Profiles bool
}

// New is [Handler], or an error when one of cfg.Handlers' patterns is
// invalid or collides with another endpoint (http.ServeMux would panic).
func New(cfg Config) (h http.Handler, err error) {
	defer func() {
		if p := recover(); p != nil {
			h, err = nil, fmt.Errorf("admin: %v", p)
		}
	}()
	return Handler(cfg), nil
}

// Handler serves:
//
//	GET /healthz       200 while the process runs (liveness)
//	GET /readyz        200 while Ready returns nil, else 503 with the reason
//	GET /debug/pprof/  Go profiles, with cfg.Profiles only
//
// and cfg.Handlers; GET / lists the endpoints. It panics, as http.ServeMux
// does, when a pattern of cfg.Handlers is invalid or collides: see New.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	paths := []string{"/healthz", "/readyz"}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	})
	if cfg.Profiles {
		paths = append(paths, "/debug/pprof/")
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range cfg.Handlers {
		mux.Handle(pattern, h)
		if _, p, ok := strings.Cut(pattern, " "); ok {
			paths = append(paths, p)
		} else {
			paths = append(paths, pattern)
		}
	}
	sort.Strings(paths)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, strings.Join(paths, "\n")+"\n")
	})
	return mux
}
