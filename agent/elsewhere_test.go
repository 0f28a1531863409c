package agent

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestSilentCallGoesElsewhere (issue 21, "retries elsewhere"; docs/
// reliability.md, defect 9): of eight instances of a service, seven take
// their share of calls and never answer (frozen, or cut off from the
// caller while the broker still holds their connections), one is live.
// With a 1 s deadline and the 300 ms take bound a call has three sends:
// drawn at random from the queue group each time, seven in eight of
// them land on a silent instance and two calls in three fail (the
// resend before decision 181). Sent again to an instance a census found
// live, every call is answered by the live one at its second send, and
// none runs twice.
func TestSilentCallGoesElsewhere(t *testing.T) {
	b := meshtest.Broker(t)
	var mu sync.Mutex
	ran := map[string]int{}
	live := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ran[r.Method+" "+r.Header.Get("X-Id")]++
		mu.Unlock()
		w.Write([]byte("live"))
	})
	startAgent(t, b, Config{Service: "orders"}, func(a *Agent) { a.Handle(live) })
	held := make(chan *nats.Msg, 4096)
	for range 7 {
		nc := meshtest.ServiceConn(t, b, "orders")
		if _, err := nc.ChanQueueSubscribe(wire.Prefix+".orders._.>", "orders", held); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	web := startAgent(t, b, Config{Service: "web"})
	client := &http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}

	const calls = 20
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var failed []string
	for i := range calls {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(method, "http://orders/x", strings.NewReader("order"))
				req.Header.Set("X-Id", strconv.Itoa(i))
				req.Header.Set(wire.HeaderTimeout, "1s")
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return
					}
					err = fmt.Errorf("%s (%s)", resp.Status, resp.Header.Get(wire.HeaderError))
				}
				failMu.Lock()
				failed = append(failed, fmt.Sprintf("%s %d: %v after %v", method, i, err, time.Since(start).Round(time.Millisecond)))
				failMu.Unlock()
			}()
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d calls failed:\n%s", len(failed), 2*calls, strings.Join(failed, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range ran {
		if strings.HasPrefix(k, http.MethodPost) && n > 1 {
			t.Errorf("%s ran %d times", k, n)
		}
	}
	if len(held) == 0 {
		t.Error("no call went to a silent instance: the test shows nothing")
	}
}
