package admin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
	if _, body := get("/"); !strings.Contains(body, "/metrics") || strings.Contains(body, "/debug/pprof/") {
		t.Errorf("index %q: want /metrics and no profiles", body)
	}
}

// TestProfilesOnlyWhenAsked: issue 19. A heap profile holds request
// headers, so /debug/pprof/ is served only with Config.Profiles.
func TestProfilesOnlyWhenAsked(t *testing.T) {
	for _, profiles := range []bool{false, true} {
		h := Handler(Config{Profiles: profiles})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if got := w.Code == 200; got != profiles {
				t.Errorf("Profiles %v: GET %s = %d", profiles, path, w.Code)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if got := strings.Contains(w.Body.String(), "/debug/pprof/"); got != profiles {
			t.Errorf("Profiles %v: the index lists profiles: %v", profiles, got)
		}
	}
}

func TestNewRefusesCollisions(t *testing.T) {
	for _, pattern := range []string{"GET /healthz", "BAD PATTERN x"} {
		if _, err := New(Config{Handlers: map[string]http.Handler{pattern: http.NotFoundHandler()}}); err == nil {
			t.Errorf("New accepted %q", pattern)
		}
	}
}

func TestWaitReady(t *testing.T) {
	calls := 0
	ready := func() error {
		if calls++; calls < 3 {
			return errors.New("starting")
		}
		return nil
	}
	if err := WaitReady(5*time.Second, nil, ready); err != nil || calls != 3 {
		t.Fatalf("WaitReady = %v after %d calls, want nil after 3", err, calls)
	}
	never := func() error { return errors.New("no connection") }
	if err := WaitReady(30*time.Millisecond, nil, never); err == nil || err.Error() != "no connection" {
		t.Fatalf("WaitReady = %v, want the last reason", err)
	}
	refused := errors.New("refused")
	begin := time.Now()
	if err := WaitReady(5*time.Second, nil, func() error { return Final(refused) }); err != refused || time.Since(begin) > time.Second {
		t.Fatalf("WaitReady = %v after %v, want the final reason at once", err, time.Since(begin))
	}
	done := make(chan struct{})
	close(done)
	if err := WaitReady(5*time.Second, done, never); !errors.Is(err, ErrDone) {
		t.Fatalf("WaitReady = %v, want ErrDone", err)
	}
}
