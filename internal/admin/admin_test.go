package admin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	ready := errors.New("draining")
	h, err := New(Config{
		Ready:    func() error { return ready },
		Handlers: map[string]http.Handler{"GET /metrics": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "m") })},
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz %d %q, want 503 naming why", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d once ready", code)
	}
	if code, body := get("/metrics"); code != 200 || body != "m" {
		t.Errorf("/metrics %d %q", code, body)
	}
	if _, body := get("/"); !strings.Contains(body, "/metrics") || !strings.Contains(body, "/debug/pprof/") {
		t.Errorf("index %q", body)
	}
}

func TestNewRefusesCollisions(t *testing.T) {
	for _, pattern := range []string{"GET /healthz", "BAD PATTERN x"} {
		if _, err := New(Config{Handlers: map[string]http.Handler{pattern: http.NotFoundHandler()}}); err == nil {
			t.Errorf("New accepted %q", pattern)
		}
	}
}
