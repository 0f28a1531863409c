package agent

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestDeadUpstreamWithHealthySibling: issue 9 item 1. One of two instances
// loses its service: the calls that reach it before it withdraws are
// answered upstream-refused (retry-safe: nothing ran), which the caller's
// built-in retry policy resends to the sibling, so no call fails; and the
// instance leaves its queue groups on the first refused connection, within
// about one health check timeout, not after FailThreshold intervals.
func TestDeadUpstreamWithHealthySibling(t *testing.T) {
	b := meshtest.Broker(t)
	up1, up2 := echoServer(t, "one"), echoServer(t, "two")
	// Slow interval checks: only the refused connection can withdraw the
	// instance quickly.
	hc := HealthConfig{Interval: time.Second, Timeout: 500 * time.Millisecond, FailThreshold: 3}
	startAgent(t, b, Config{Service: "orders", Upstream: up1.URL, Health: hc})
	two := startAgent(t, b, Config{Service: "orders", Upstream: up2.URL, Health: hc})
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport()}
	if seen := countInstances(t, c, 50); seen["one"] == 0 || seen["two"] == 0 {
		t.Fatalf("both instances should take load: %v", seen)
	}

	up2.Close() // the service is gone: its port refuses connections
	killed := time.Now()
	var failures, refused int
	withdrawn := time.Duration(0)
	for range 200 {
		resp, err := c.Get("http://orders/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failures++
			if resp.StatusCode == 503 && resp.Header.Get(wire.HeaderError) == string(wire.KindUpstreamRefused) {
				refused++
			}
		}
		if withdrawn == 0 && !two.Serving() {
			withdrawn = time.Since(killed)
		}
	}
	meshtest.CheckFor(t, hc.Timeout+time.Second, 5*time.Millisecond, func() error {
		if two.Serving() {
			return errors.New("the instance whose service died still serves")
		}
		return nil
	})
	if withdrawn == 0 {
		withdrawn = time.Since(killed)
	}
	t.Logf("200 calls: %d failed (%d upstream-refused); the instance withdrew %v after its service died", failures, refused, withdrawn)
	if failures != refused {
		t.Errorf("%d of %d failures were not upstream-refused", failures-refused, failures)
	}
	if withdrawn > time.Duration(hc.FailThreshold)*hc.Interval {
		t.Errorf("withdrew after %v: waited for failed interval checks, not the refused connection", withdrawn)
	}
	// The built-in retry policy resends retry-safe failures such as
	// upstream-refused to another instance: no call fails.
	if failures != 0 {
		t.Errorf("%d of 200 calls failed", failures)
	}
}
