package agent

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestFrozenServiceIsWithdrawn (issue 21, the fault suite's frozen
// service): of two instances of a service, one's service process hangs
// (it takes connections and reads nothing back: here a server whose
// every request blocks, OPTIONS * included), which a TCP connect health
// check cannot see. Its agent sees its calls go unanswered, probes the
// service itself, finds it answers nothing, and leaves its queue groups:
// the calls go to the sibling, and none more is written to the hung
// service; when the service answers again, the instance serves again. A
// service that is only slow (its calls take seconds, but it answers the
// probe) is not withdrawn.
func TestFrozenServiceIsWithdrawn(t *testing.T) {
	b := meshtest.Broker(t)
	var frozen atomic.Bool
	var atFrozen atomic.Int32
	thaw := make(chan struct{})
	hung := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() {
			atFrozen.Add(1)
			<-thaw
		}
		w.Write([]byte("a"))
	}))
	hung.Config.DisableGeneralOptionsHandler = true // OPTIONS * reaches the handler: it hangs too
	hung.Start()
	t.Cleanup(hung.Close)
	var thawed atomic.Bool
	unfreeze := func() {
		frozen.Store(false)
		if thawed.CompareAndSwap(false, true) {
			close(thaw)
		}
	}
	t.Cleanup(unfreeze) // before the server's Close, which waits for its handlers
	sibling := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("b")) }))
	t.Cleanup(sibling.Close)
	a := startAgent(t, b, Config{Service: "orders", Upstream: hung.URL})
	startAgent(t, b, Config{Service: "orders", Upstream: sibling.URL})
	web := startAgent(t, b, Config{Service: "web"})
	c := proxyClient(listen(t, web.ServeHTTPProxy))
	c.Timeout = 10 * time.Second
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, "http://orders/", nil)
		req.Header.Set("Mesh-Timeout", "1s")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	frozen.Store(true)
	start := time.Now()
	for a.Serving() && time.Since(start) < 10*time.Second {
		get()
		time.Sleep(20 * time.Millisecond)
	}
	if a.Serving() {
		t.Fatal("the instance whose service hangs still serves after 10 s")
	}
	t.Logf("withdrawn %v after the service hung; %d calls reached it", time.Since(start).Round(time.Millisecond), atFrozen.Load())
	reached := atFrozen.Load()
	for i := range 30 {
		if code := get(); code != http.StatusOK {
			t.Errorf("call %d after the withdrawal: %d", i, code)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := atFrozen.Load() - reached; n > 1 { // the probe of the check running now
		t.Errorf("%d more requests were written to the hung service after its withdrawal", n)
	}

	unfreeze()
	meshtest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if !a.Serving() {
			return errors.New("not serving yet")
		}
		return nil
	})
}

// TestSlowServiceStays: a service whose calls take 2 s, with none
// answered meanwhile, is asked whether it is alive, answers, and keeps
// serving.
func TestSlowServiceStays(t *testing.T) {
	b := meshtest.Broker(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
		w.Write([]byte("done"))
	}))
	t.Cleanup(slow.Close)
	a := startAgent(t, b, Config{Service: "report", Upstream: slow.URL})
	web := startAgent(t, b, Config{Service: "web"})
	c := proxyClient(listen(t, web.ServeHTTPProxy))
	done := make(chan int, 8)
	for range 8 {
		go func() {
			resp, err := c.Get("http://report/")
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		time.Sleep(250 * time.Millisecond)
	}
	for range 8 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("a slow call: %d", code)
		}
	}
	if !a.Serving() {
		t.Error("a slow service's instance was withdrawn")
	}
}
