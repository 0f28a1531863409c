package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestBrokerOutage: issue 9 item 2. While the broker is down, calls fail
// fast with broker-unavailable (after the reconnect grace, long before
// their 30 s default deadline), /readyz says not ready, and once a broker
// is back on the same address calls resume within about a second.
func TestBrokerOutage(t *testing.T) {
	store := t.TempDir()
	b := meshtest.Broker(t, func(c *broker.Config) { c.StoreDir = store; c.LameDuckDuration = -1 })
	addr, _ := url.Parse(b.ClientURL())
	connect := func(service string) *nats.Conn {
		return meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix(service)),
			nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	}
	// The agents shut down at the end of the test, while the second broker
	// still runs (its cleanup would come first): draining needs a
	// connection.
	var agents []*Agent
	defer func() {
		for _, a := range agents {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := a.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			cancel()
		}
	}()
	start := func(cfg Config) *Agent {
		cfg.Logger = quiet
		a, err := New(connect(cfg.Service), cfg)
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
	up := echoServer(t, "one")
	start(Config{Service: "orders", Upstream: up.URL})
	const grace = 300 * time.Millisecond
	web := start(Config{Service: "web", ReconnectGrace: grace})
	c := &http.Client{Transport: web.Transport()}
	adminSrv := httptest.NewServer(web.AdminHandler())
	defer adminSrv.Close()
	ready := func() int {
		resp, err := http.Get(adminSrv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	call := func() (*http.Response, time.Duration) {
		t0 := time.Now()
		resp, err := c.Get("http://orders/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, time.Since(t0)
	}
	if resp, _ := call(); resp.StatusCode != 200 || ready() != 200 {
		t.Fatalf("before the outage: call %d, readyz %d", resp.StatusCode, ready())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code := ready(); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz %d during the outage", code)
		}
		return nil
	})
	for range 3 {
		resp, took := call()
		if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != string(wire.KindBrokerUnavailable) {
			t.Fatalf("during the outage: %s %s, want 503 broker-unavailable", resp.Status, resp.Header.Get(wire.HeaderError))
		}
		t.Logf("during the outage: broker-unavailable after %v (grace %v)", took, grace)
		if took >= 10*time.Second {
			t.Fatalf("the call waited %v: it sat in the reconnect buffer", took)
		}
	}

	// Issue 21, item 5: the grace runs from the loss of the connection,
	// not from each attempt: a call well into the outage, whatever its
	// retries, fails at once instead of waiting the grace per attempt
	// (3 x grace before).
	time.Sleep(grace)
	if resp, took := call(); resp.StatusCode != 503 || took > grace {
		t.Errorf("a call %v into the outage: %s after %v, want 503 at once (grace %v)", 2*grace, resp.Status, took, grace)
	}

	back := time.Now()
	meshtest.Broker(t, func(c *broker.Config) { c.Listen = addr.Host; c.StoreDir = store; c.LameDuckDuration = -1 })
	meshtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if resp, _ := call(); resp.StatusCode != 200 {
			return fmt.Errorf("after the broker's return: %s %s", resp.Status, resp.Header.Get(wire.HeaderError))
		}
		return nil
	})
	t.Logf("calls resumed %v after the broker was back", time.Since(back))
	if code := ready(); code != 200 {
		t.Errorf("/readyz %d after the broker's return", code)
	}
}
