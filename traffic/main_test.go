package traffic_test

import (
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

	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

var quiet = slog.New(slog.DiscardHandler)

// testMesh is a broker with agents on it, and a mesh file they watch.
type testMesh struct {
	t    testing.TB
	b    *broker.Broker
	path string
	src  *live.Source
}

// newMesh starts a broker and writes yaml as the mesh file every agent of
// the mesh applies (reloaded every 10ms when rewritten with setFile).
func newMesh(t testing.TB, yaml string) *testMesh {
	t.Helper()
	m := &testMesh{t: t, b: meshtest.Broker(t), path: filepath.Join(t.TempDir(), "mesh.yaml")}
	if err := os.WriteFile(m.path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := live.WatchFile(context.Background(), m.path, live.SourceConfig{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m.src = src
	return m
}

// setFile rewrites the mesh file and waits until it applies.
func (m *testMesh) setFile(yaml string) {
	m.t.Helper()
	_, rev := m.src.Current()
	if err := os.WriteFile(m.path, []byte(yaml), 0o600); err != nil {
		m.t.Fatal(err)
	}
	meshtest.CheckFor(m.t, 5*time.Second, 5*time.Millisecond, func() error {
		if _, now := m.src.Current(); now == rev {
			return fmt.Errorf("still at revision %d", rev)
		}
		return nil
	})
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

// get calls url with the header pairs given and returns status and body.
func get(t testing.TB, c *http.Client, url string, header ...string) (int, string, http.Header) {
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

// parallel runs n calls of f over workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

func within(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }

var _ = strings.Contains

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
