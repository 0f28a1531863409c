package resilience_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// attemptLog is innermost outbound middleware (agent.Config.Outbound) that
// records each attempt as the resilience policies numbered it
// (pipeline.AttemptFrom).
type attemptLog struct {
	mu sync.Mutex
	as []pipeline.Attempt
}

func (l *attemptLog) middleware(next pipeline.Sender) pipeline.Sender {
	return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		a, _ := pipeline.AttemptFrom(ctx)
		l.mu.Lock()
		l.as = append(l.as, a)
		l.mu.Unlock()
		return next.Send(ctx, c)
	})
}

// counts are the attempts recorded, the retries among them (numbered
// past 1, not hedges) and the hedges.
func (l *attemptLog) counts() (attempts, retries, hedges int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.as {
		switch {
		case a.Hedge:
			hedges++
		case a.Number > 1:
			retries++
		}
	}
	return len(l.as), retries, hedges
}

// meshFile writes yaml to a temporary mesh file and watches it; the
// returned write replaces the file's content and waits until the source
// has loaded the new version.
func meshFile(t testing.TB, yaml string) (src *live.Source, write func(yaml string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := live.WatchFile(context.Background(), path, live.SourceConfig{Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if f, _ := src.Current(); f == nil {
		t.Fatal("mesh file did not load")
	}
	return src, func(yaml string) {
		t.Helper()
		before, _ := src.Current()
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		meshtest.CheckFor(t, 3*time.Second, 5*time.Millisecond, func() error {
			if f, _ := src.Current(); f == before {
				return os.ErrNotExist
			}
			return nil
		})
	}
}

// serve starts an instance of service answering in process with h.
func serve(t testing.TB, b *broker.Broker, service string, h http.HandlerFunc) *agent.Agent {
	t.Helper()
	return agenttest.Start(t, b, agent.Config{Service: service}, agenttest.Handle(h))
}

// client starts a caller agent "web" under src and returns an HTTP client
// that sends through it in process.
func client(t testing.TB, b *broker.Broker, src *live.Source, cfg ...func(*agent.Config)) *http.Client {
	t.Helper()
	c := agent.Config{Service: "web", Policies: src}
	for _, f := range cfg {
		f(&c)
	}
	a := agenttest.Start(t, b, c)
	return &http.Client{Transport: a.Transport()}
}

// do sends a request and returns its status, Mesh-Error and body.
func do(t testing.TB, hc *http.Client, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get(wire.HeaderError), string(body)
}

func get(t testing.TB, hc *http.Client, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, hc, req)
}
