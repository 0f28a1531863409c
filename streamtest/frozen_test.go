package streamtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFrozenInstance (issue 21, items 1 and 2, and its Show): of two
// instances of a service, one's agent is frozen (SIGSTOP) for 8 s under a
// steady load of GETs and POSTs, each with Mesh-Timeout 3s and an ID the
// service counts (a ledger). At most 1% of the calls fail: a call the
// frozen agent got is sent again to the queue group once it has heard
// nothing for the take bound (wire.DefaultTakeWithin), a POST safely,
// since the frozen agent starts none its caller has not confirmed to it;
// and the broker, pinging its clients every 2 s, drops the frozen agent
// within seconds. No POST runs twice, and when the frozen agent wakes up
// with calls still in its socket, none starts at the service after its
// client's deadline (Mesh-Start-By).
func TestFrozenInstance(t *testing.T) {
	var late, served atomic.Int64
	l := &ledger{runs: map[string]int{}}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if ms, err := strconv.ParseInt(r.Header.Get("X-Deadline"), 10, 64); err == nil && time.Now().After(time.UnixMilli(ms).Add(300*time.Millisecond)) {
			late.Add(1)
		}
		if r.Method == http.MethodPost {
			l.ran(r.Header.Get("X-Request-Id"))
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(svc.Close)
	m := startMesh(t, meshConfig{upstream: svc.URL})
	// A second instance of orders, in front of the same service.
	admin := freeAddr(t)
	sibling := startProc(t, "orders's second agent", "agent", "--service", "orders", "--upstream", svc.URL,
		"--proxy", "off", "--grpc-proxy", "off", "--admin", admin, "--nats", m.natsURL, "--policy", "off", "--log-level", "warn")
	sibling.waitUntil(t, ready("http://"+admin+"/readyz"))

	c := m.viaProxy(t)
	c.Timeout = 20 * time.Second // a hang fails the test, not the suite
	call := func(method, id string) (int, string) {
		deadline := time.Now().Add(3 * time.Second)
		req, _ := http.NewRequest(method, "http://orders/pay", nil)
		req.Header.Set("Mesh-Timeout", "3s")
		req.Header.Set("X-Request-Id", id)
		req.Header.Set("X-Deadline", strconv.FormatInt(deadline.UnixMilli(), 10))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Mesh-Error")
	}
	if code, _ := call(http.MethodGet, "warm-up"); code != 200 {
		t.Fatalf("before the freeze: %d", code)
	}

	if err := m.callee.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	var (
		mu       sync.Mutex
		failures []string
		calls    int
		wg       sync.WaitGroup
	)
	for i := 0; time.Since(frozen) < 8*time.Second; i++ {
		method := http.MethodPost
		if i%2 == 1 {
			method = http.MethodGet
		}
		wg.Add(1)
		go func(sent time.Duration) {
			defer wg.Done()
			code, why := call(method, strconv.Itoa(i))
			mu.Lock()
			defer mu.Unlock()
			calls++
			if code != 200 {
				failures = append(failures, fmt.Sprintf("%s sent at %v: %d %s", method, sent.Round(time.Millisecond), code, why))
			}
		}(time.Since(frozen))
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if err := m.callee.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the woken agent reads what its socket held
	t.Logf("frozen 8 s: %d calls, %d failed, %d served, %d started late, %d POSTs ran twice", calls, len(failures), served.Load(), late.Load(), len(l.twice()))
	if len(failures)*100 > calls {
		t.Errorf("%d of %d calls failed (more than 1%%): %v", len(failures), calls, failures)
	}
	if n := late.Load(); n > 0 {
		t.Errorf("%d calls started at the service after their client's deadline", n)
	}
	if twice := l.twice(); len(twice) > 0 {
		t.Errorf("ran more than once: %v", twice)
	}
}

// TestClientGoneCancels (issue 21, item 4): a client that gives up after
// 1 s on a call it gave an hour (Mesh-Timeout: 1h) cancels the call at
// the service through both agents: the callee's agent opened the slow
// call (the stream protocol's accept, after wire.StreamOpenAfter), so the caller's
// agent, whose client closed its connection, tells it.
func TestClientGoneCancels(t *testing.T) {
	ended := make(chan time.Duration, 1)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		ended <- time.Since(start)
	}))
	t.Cleanup(svc.Close)
	m := startMesh(t, meshConfig{upstream: svc.URL})
	c := m.viaProxy(t)
	c.Timeout = time.Second
	req, _ := http.NewRequest(http.MethodPost, "http://orders/slow", nil)
	req.Header.Set("Mesh-Timeout", "1h")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the call answered %s before the client's timeout", resp.Status)
	}
	select {
	case d := <-ended:
		if d > 3*time.Second {
			t.Errorf("the service's call ran %v after a client that gave up at 1s", d)
		}
		t.Logf("the service's call ended %v after it began (client gave up at 1s)", d)
	case <-time.After(10 * time.Second):
		t.Fatal("the service's call never ended")
	}
}

// TestKilledCalleeAnswersEarly (issue 21, item 3, in part): a POST whose
// callee's agent is killed while the service works on it gets an explicit
// error within the stream idle timeout (here 2 s), not at its deadline
// (30 s): the callee's agent opened the slow call and kept it alive with
// pings, whose silence tells the caller's agent its callee is gone. (A
// call whose callee dies before it is opened is sent again after
// wire.DefaultTakeWithin: TestLedger.)
func TestKilledCalleeAnswersEarly(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(svc.Close)
	m := startMesh(t, meshConfig{upstream: svc.URL, idle: 2 * time.Second})
	c := m.viaProxy(t)
	time.AfterFunc(500*time.Millisecond, m.callee.kill)
	start := time.Now()
	resp, err := c.Post("http://orders/pay", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Mesh-Error") != "connection-lost" {
		t.Errorf("a POST whose callee died: %s, Mesh-Error %q; want 503 connection-lost", resp.Status, resp.Header.Get("Mesh-Error"))
	}
	if took > 6*time.Second {
		t.Errorf("answered after %v: the idle timeout is 2s", took)
	}
	t.Logf("answered %s after %v (callee killed at 500ms, idle timeout 2s)", resp.Status, took)
}
