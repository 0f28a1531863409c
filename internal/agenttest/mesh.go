package agenttest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
)

// Mesh is a broker with agents on it, and a mesh file they watch.
type Mesh struct {
	T    testing.TB
	B    *broker.Broker
	Path string // the mesh file, "" when Src is not a file
	Src  *live.Source
}

// NewMesh starts a broker and writes yaml as the mesh file every agent of
// the mesh applies (reloaded every 10ms when rewritten with SetFile).
func NewMesh(t testing.TB, yaml string) *Mesh {
	t.Helper()
	m := &Mesh{T: t, B: meshtest.Broker(t), Path: filepath.Join(t.TempDir(), "mesh.yaml")}
	if err := os.WriteFile(m.Path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := live.WatchFile(context.Background(), m.Path, live.SourceConfig{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m.Src = src
	return m
}

// SetFile rewrites the mesh file and waits until it applies.
func (m *Mesh) SetFile(yaml string) {
	m.T.Helper()
	_, rev := m.Src.Current()
	if err := os.WriteFile(m.Path, []byte(yaml), 0o600); err != nil {
		m.T.Fatal(err)
	}
	meshtest.CheckFor(m.T, 5*time.Second, 5*time.Millisecond, func() error {
		if _, now := m.Src.Current(); now == rev {
			return fmt.Errorf("still at revision %d", rev)
		}
		return nil
	})
}

// Agent starts an agent of service (and subset) applying the mesh file,
// serving h in-process if h is not nil; its logs are discarded unless an
// opt sets a Logger.
func (m *Mesh) Agent(service, subset string, h http.Handler, opts ...func(*agent.Config)) *agent.Agent {
	m.T.Helper()
	cfg := agent.Config{Service: service, Subset: subset, Policies: m.Src, Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	if h == nil {
		return Start(m.T, m.B, cfg)
	}
	return Start(m.T, m.B, cfg, Handle(h))
}

// Client is an HTTP client that calls through a new agent of caller.
func (m *Mesh) Client(caller string) *http.Client {
	m.T.Helper()
	a := m.Agent(caller, "", nil)
	return &http.Client{Transport: a.Transport(), Timeout: 10 * time.Second}
}

// Counter counts the calls each instance served, by name.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Add counts one call served by name.
func (c *Counter) Add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

// Get is how many calls name served.
func (c *Counter) Get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// Named answers every call with 200 and its name, and counts it in c
// (when not nil).
func Named(name string, c *Counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c != nil {
			c.Add(name)
		}
		io.WriteString(w, name)
	})
}

// Get calls url through c with the header pairs given and returns status,
// body and header.
func Get(t testing.TB, c *http.Client, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}
