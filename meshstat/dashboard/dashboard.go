package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/natsmesh/natsmesh/meshstat"
)

//go:embed static
var static embed.FS

// ErrInvalidConfig marks a Config that Handler cannot serve.
var ErrInvalidConfig = errors.New("dashboard: invalid config")

// Config configures a dashboard [Handler]. Zero values take the defaults
// noted on each field.
type Config struct {
	// Sampler gathers the mesh's counters. Required.
	Sampler *meshstat.Sampler
	// MinInterval is the youngest report served from cache: requests
	// closer together share one gathering. Default 1s.
	MinInterval time.Duration
	// WarmUp is the wait between the first two samples, so the first
	// report already has rates. Default 1s.
	WarmUp time.Duration
	// Refresh is how often the page asks for a new report. Default 2s.
	Refresh time.Duration
}

// graph is the JSON of /api/graph.
type graph struct {
	meshstat.Report
	RefreshMS int64  `json:"refresh_ms"`
	Error     string `json:"error,omitempty"`
}

type handler struct {
	cfg Config
	mux *http.ServeMux

	mu     sync.Mutex // one gathering at a time; guards the fields below
	last   meshstat.Report
	lastAt time.Time
	warm   bool
}

// Handler returns the dashboard. Errors wrap ErrInvalidConfig.
func Handler(cfg Config) (http.Handler, error) {
	if cfg.Sampler == nil {
		return nil, fmt.Errorf("dashboard: Config.Sampler is required: %w", ErrInvalidConfig)
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = time.Second
	}
	if cfg.WarmUp <= 0 {
		cfg.WarmUp = time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 2 * time.Second
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /api/graph", h.graph)
	h.mux.Handle("GET /", http.FileServerFS(files))
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) graph(w http.ResponseWriter, r *http.Request) {
	rep, err := h.report(r.Context())
	g := graph{Report: rep, RefreshMS: h.cfg.Refresh.Milliseconds()}
	if err != nil {
		g.Error = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(g)
}

// report returns the cached report while it is younger than MinInterval,
// and otherwise gathers a new one; the very first gathers twice, WarmUp
// apart. On error it returns the last good report with the error.
func (h *handler) report(ctx context.Context) (meshstat.Report, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.warm && time.Since(h.lastAt) < h.cfg.MinInterval {
		return h.last, nil
	}
	if !h.warm {
		if _, err := h.cfg.Sampler.Next(ctx); err != nil {
			return h.last, err
		}
		select {
		case <-time.After(h.cfg.WarmUp):
		case <-ctx.Done():
			return h.last, ctx.Err()
		}
	}
	rep, err := h.cfg.Sampler.Next(ctx)
	if err != nil {
		return h.last, err
	}
	h.last, h.lastAt, h.warm = rep, time.Now(), true
	return rep, nil
}
