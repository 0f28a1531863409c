package passive_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
)

// The agents of the end-to-end tests, on a broker of their own, apply a
// mesh file: the same helpers as package traffic's tests, cut to what
// passive health's need.

var quiet = slog.New(slog.DiscardHandler)

// testMesh is a broker with agents on it, and a mesh file they watch.
type testMesh struct {
	t   testing.TB
	b   *broker.Broker
	src *live.Source
}

// newMesh starts a broker and writes yaml as the mesh file every agent of
// the mesh applies.
func newMesh(t testing.TB, yaml string) *testMesh {
	t.Helper()
	m := &testMesh{t: t, b: meshtest.Broker(t)}
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := live.WatchFile(context.Background(), path, live.SourceConfig{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m.src = src
	return m
}

// agent starts an agent of service (and subset) applying the mesh file,
// serving h in-process if h is not nil.
func (m *testMesh) agent(service, subset string, h http.Handler, opts ...func(*agent.Config)) *agent.Agent {
	m.t.Helper()
	cfg := agent.Config{Service: service, Subset: subset, Policies: m.src, Logger: quiet}
	for _, o := range opts {
		o(&cfg)
	}
	if h == nil {
		return agenttest.Start(m.t, m.b, cfg)
	}
	return agenttest.Start(m.t, m.b, cfg, agenttest.Handle(h))
}

// client is an HTTP client that calls through the agent of caller.
func (m *testMesh) client(caller string) *http.Client {
	m.t.Helper()
	a := m.agent(caller, "", nil)
	return &http.Client{Transport: a.Transport(), Timeout: 10 * time.Second}
}

// counter counts the calls each instance served, by name.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *counter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// named answers every call with 200 and its name, and counts it.
func named(name string, c *counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c != nil {
			c.add(name)
		}
		io.WriteString(w, name)
	})
}

// get calls url and returns status and body.
func get(t testing.TB, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// logSink collects log lines, for asserting on decisions.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), sub)
}

// flaky answers 500 while failing is set, and counts its calls.
func flaky(name string, c *counter, failing *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.add(name)
		if failing.Load() {
			http.Error(w, name+" failing", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(name))
	})
}
