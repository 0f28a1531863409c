package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	// before and after are index.html around its reportSlot.
	before, after []byte

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
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, err
	}
	before, after, ok := bytes.Cut(index, []byte(reportSlot))
	if !ok {
		return nil, fmt.Errorf("dashboard: index.html has no %s", reportSlot)
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux(), before: before, after: after}
	h.mux.HandleFunc("GET /api/graph", h.graph)
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.Handle("GET /", http.FileServerFS(files))
	return h, nil
}

// reportSlot is where index.html takes the first report: the content of
// its <script id="report" type="application/json"> (null as written, for
// a page read from the files), which the page renders at once.
const reportSlot = `<script id="report" type="application/json">null</script>`

// page serves index.html with the latest report in it, so that the page
// shows the mesh when it first paints rather than "loading…" and empty
// tables until its first poll (issue 19). The report is JSON in a data
// block, which the Content-Security-Policy's script-src does not cover
// (it runs nothing); encoding/json escapes <, > and &, so no report can
// end the block.
func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	data, err := json.Marshal(h.graphOf(r.Context()))
	if err != nil {
		data = []byte("null")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(h.before)
	io.WriteString(w, `<script id="report" type="application/json">`)
	w.Write(data)
	io.WriteString(w, `</script>`)
	w.Write(h.after)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) graph(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(h.graphOf(r.Context()))
}

// graphOf is the latest report as /api/graph serves it.
func (h *handler) graphOf(ctx context.Context) graph {
	rep, err := h.report(ctx)
	g := graph{Report: rep, RefreshMS: h.cfg.Refresh.Milliseconds()}
	if err != nil {
		g.Error = err.Error()
	}
	return g
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
