package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestCallsAcrossBrokerRestartsThroughBatchconn (review of 07588fb): two
// agents connected with Connect (so through batchconn) carry 16 callers'
// POSTs without pause while the broker restarts twice. No call is
// answered with another's answer, none reaches the service twice, and
// calls succeed again after each restart.
func TestCallsAcrossBrokerRestartsThroughBatchconn(t *testing.T) {
	store := t.TempDir()
	b := meshtest.Broker(t, func(c *broker.Config) { c.StoreDir = store; c.LameDuckDuration = -1 })
	addr, _ := url.Parse(b.ClientURL())
	var mu sync.Mutex
	hits := map[string]int{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits[string(id)]++
		mu.Unlock()
		w.Write(id)
	}))
	defer up.Close()
	var agents []*Agent
	var conns []*nats.Conn
	defer func() {
		for i, a := range agents {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			a.Shutdown(ctx)
			cancel()
			conns[i].Close()
		}
	}()
	start := func(cfg Config) *Agent {
		t.Helper()
		nc, err := Connect(context.Background(), cfg.Service, ConnectConfig{URL: b.ClientURL(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logger = quiet
		conns = append(conns, nc)
		a, err := New(nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
		if err := a.Ready(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		return a
	}
	start(Config{Service: "orders", Upstream: up.URL})
	web := start(Config{Service: "web"})
	client := &http.Client{Transport: web.Transport()}

	stop := make(chan struct{})
	var ok, failed, wrong atomic.Int32
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%d:%d", c, i)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://orders/x", strings.NewReader(id))
				resp, err := client.Do(req)
				if err != nil {
					cancel()
					failed.Add(1)
					continue
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				switch {
				case err != nil || resp.StatusCode != 200:
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
				case string(got) != id:
					wrong.Add(1)
				default:
					ok.Add(1)
				}
			}
		}()
	}
	waitCalls := func() {
		t.Helper()
		from := ok.Load()
		meshtest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := ok.Load() - from; n < 300 {
				return fmt.Errorf("%d calls answered since, want 300", n)
			}
			return nil
		})
	}
	waitCalls()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := b.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		b = meshtest.Broker(t, func(c *broker.Config) { c.Listen = addr.Host; c.StoreDir = store; c.LameDuckDuration = -1 })
		waitCalls()
	}
	close(stop)
	wg.Wait()
	twice := 0
	mu.Lock()
	for id, n := range hits {
		if n > 1 {
			twice++
			t.Logf("%s reached the service %d times", id, n)
		}
	}
	mu.Unlock()
	t.Logf("%d answered, %d failed", ok.Load(), failed.Load())
	if w := wrong.Load(); w > 0 || twice > 0 {
		t.Fatalf("%d calls answered with another's answer, %d reached the service more than once", w, twice)
	}
}
