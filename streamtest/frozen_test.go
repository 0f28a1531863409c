package streamtest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFrozenInstance (issue 21, items 1 and 2): of two instances of a
// service, one's agent is frozen (SIGSTOP) for 10 s under a steady load
// of calls, each with its client's deadline of 2 s. The broker pings its
// clients every 2 s and drops one that answers two pings in a row with
// silence, so the frozen agent loses its share of the queue group within
// seconds, not minutes: from 8 s on, every call is answered, by the
// sibling. And when the frozen agent wakes up with the calls still in
// its socket, none starts at the service after its client's deadline
// (Mesh-Start-By): the service checks each call's arrival against the
// deadline its client put in the request.
func TestFrozenInstance(t *testing.T) {
	var late, served atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if ms, err := strconv.ParseInt(r.Header.Get("X-Deadline"), 10, 64); err == nil && time.Now().After(time.UnixMilli(ms).Add(300*time.Millisecond)) {
			late.Add(1)
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
	call := func() int {
		deadline := time.Now().Add(2 * time.Second)
		req, _ := http.NewRequest(http.MethodPost, "http://orders/pay", nil)
		req.Header.Set("Mesh-Timeout", "2s")
		req.Header.Set("X-Deadline", strconv.FormatInt(deadline.UnixMilli(), 10))
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call(); code != 200 {
		t.Fatalf("before the freeze: %d", code)
	}

	if err := m.callee.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	var (
		mu          sync.Mutex
		failedAfter []time.Duration // calls sent 8 s or more into the freeze that failed
		failed      int
		calls       int
		wg          sync.WaitGroup
	)
	for time.Since(frozen) < 10*time.Second {
		wg.Add(1)
		go func(sent time.Duration) {
			defer wg.Done()
			code := call()
			mu.Lock()
			defer mu.Unlock()
			calls++
			if code != 200 {
				failed++
				if sent >= 8*time.Second {
					failedAfter = append(failedAfter, sent)
				}
			}
		}(time.Since(frozen))
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	if err := m.callee.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the woken agent reads what its socket held
	t.Logf("frozen 10 s: %d calls, %d failed (all while the broker still counted the frozen agent in), %d served, %d started late", calls, failed, served.Load(), late.Load())
	if len(failedAfter) > 0 {
		t.Errorf("%d calls sent 8 s or more into the freeze failed (at %v): the frozen agent kept its share", len(failedAfter), failedAfter)
	}
	if n := late.Load(); n > 0 {
		t.Errorf("%d calls started at the service after their client's deadline", n)
	}
}

// TestClientGoneCancels (issue 21, item 4): a client that gives up after
// 1 s on a call it gave an hour (Mesh-Timeout: 1h) cancels the call at
// the service through both agents: the callee's agent opened the slow
// call (the stream protocol's accept, after 200 ms), so the caller's
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
// call whose callee dies within its first 200 ms, before it is opened,
// ends at wire.StreamAckWithin: TestLedger.)
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
