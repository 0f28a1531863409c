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

// ledger counts each request's executions at the service, by the ID its
// client gave it.
type ledger struct {
	mu   sync.Mutex
	runs map[string]int
}

func (l *ledger) ran(id string) {
	l.mu.Lock()
	l.runs[id]++
	l.mu.Unlock()
}

func (l *ledger) twice() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id, n := range l.runs {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s ran %d times", id, n))
		}
	}
	return out
}

// failure is how one request failed; explicit: with a mesh error.
type failure struct {
	method, what string
	explicit     bool
}

// TestLedger (issue 21, a fault suite's fast cases): under a steady load
// of POSTs (non-idempotent) and GETs, each with an ID the service counts,
// one of two instances' agents is killed (SIGKILL) or drained (SIGTERM).
// Every request gets exactly one outcome (the client's call returns once),
// the service's answer or an explicit mesh error, never the client's own
// timeout: a POST the killed agent had started gets 503 connection-lost
// within the stream idle timeout (it may have run), one it had not yet
// started is sent again (wire.DefaultTakeWithin) and answered, a GET is
// retried on the sibling and answered; no POST runs twice; a drain fails
// no call.
func TestLedger(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		noFail bool // every call answered 200
	}{
		{"agent killed", syscall.SIGKILL, false},
		{"agent drained", syscall.SIGTERM, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &ledger{runs: map[string]int{}}
			svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					// A GET may run twice (a retry of an idempotent call
					// whose instance died with it); a POST never.
					l.ran(r.Header.Get("X-Request-Id"))
				}
				time.Sleep(20 * time.Millisecond) // calls in flight at the fault
				w.Write([]byte("ok"))
			}))
			t.Cleanup(svc.Close)
			m := startMesh(t, meshConfig{upstream: svc.URL, idle: 2 * time.Second})
			admin := freeAddr(t)
			sibling := startProc(t, "orders's second agent", "agent", "--service", "orders", "--upstream", svc.URL,
				"--proxy", "off", "--grpc-proxy", "off", "--admin", admin, "--nats", m.natsURL, "--policy", "off",
				"--log-level", "warn", "--stream-idle", "2s")
			sibling.waitUntil(t, ready("http://"+admin+"/readyz"))
			c := m.viaProxy(t)
			c.Timeout = 20 * time.Second // a hang fails the test, not the suite

			var (
				n, failed, outcomes atomic.Int64
				wg                  sync.WaitGroup
				errs                sync.Map
			)
			stop := time.Now().Add(3 * time.Second)
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; time.Now().Before(stop); i++ {
						id := strconv.Itoa(w) + "-" + strconv.Itoa(i)
						method := http.MethodPost
						if i%2 == 1 {
							method = http.MethodGet
						}
						req, _ := http.NewRequest(method, "http://orders/x", nil)
						req.Header.Set("X-Request-Id", id)
						n.Add(1)
						resp, err := c.Do(req)
						outcomes.Add(1)
						if err != nil {
							// No answer at all: the client's own timeout.
							failed.Add(1)
							errs.Store(id, failure{method, err.Error(), false})
							continue
						}
						resp.Body.Close()
						if resp.StatusCode != 200 {
							failed.Add(1)
							errs.Store(id, failure{method, resp.Status + " " + resp.Header.Get("Mesh-Error"), resp.Header.Get("Mesh-Error") != ""})
						}
					}
				}(w)
			}
			time.Sleep(time.Second)
			m.callee.cmd.Process.Signal(tc.sig)
			wg.Wait()
			t.Logf("%s: %d requests, %d outcomes, %d failed", tc.name, n.Load(), outcomes.Load(), failed.Load())
			if n.Load() != outcomes.Load() {
				t.Errorf("%d requests, %d outcomes", n.Load(), outcomes.Load())
			}
			if twice := l.twice(); len(twice) > 0 {
				t.Errorf("ran more than once: %v", twice)
			}
			errs.Range(func(id, v any) bool {
				f := v.(failure)
				switch {
				case tc.noFail:
					t.Errorf("request %s (%s) failed during a drain: %s", id, f.method, f.what)
				case !f.explicit:
					t.Errorf("request %s (%s) got no explicit answer: %s", id, f.method, f.what)
				case f.method != http.MethodPost:
					t.Errorf("request %s (%s, idempotent: retried elsewhere) failed: %s", id, f.method, f.what)
				default:
					t.Logf("request %s (%s): %s", id, f.method, f.what)
				}
				return true
			})
		})
	}
}
