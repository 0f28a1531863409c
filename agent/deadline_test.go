package agent

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestCallerDeadlineHeader: issue 9 item 10. An HTTP caller sets its own
// deadline with the Mesh-Timeout request header, on every HTTP entry point;
// it is consumed there (the service sees the propagated deadline, not the
// header), bounded by Config.MaxTimeout, and a malformed one is refused.
func TestCallerDeadlineHeader(t *testing.T) {
	b := meshtest.Broker(t)
	type seen struct {
		left   time.Duration
		header string
	}
	got := make(chan seen, 10)
	startAgent(t, b, Config{Service: "slow"}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			left := time.Duration(math.MaxInt64) // no deadline: all the time in the world
			if d, ok := r.Context().Deadline(); ok {
				left = time.Until(d)
			}
			got <- seen{left, r.Header.Get("Mesh-Timeout") + r.Header.Get("Mesh-Hdr-Mesh-Timeout")}
			// A slow service: it holds past its deadline, so the caller's
			// own deadline is what answers (a handler that returned at its
			// deadline would race the caller's timer with a 200).
			<-r.Context().Done()
			time.Sleep(300 * time.Millisecond)
		}))
	})
	web := startAgent(t, b, Config{Service: "web", MaxTimeout: 500 * time.Millisecond})
	proxy := listen(t, web.ServeHTTPProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "slow") })
	clients := map[string]func(timeout string) (*http.Response, error){
		"proxy": func(timeout string) (*http.Response, error) {
			req, _ := http.NewRequest("GET", "http://slow/", nil)
			req.Header.Set("Mesh-Timeout", timeout)
			return proxyClient(proxy).Do(req)
		},
		"bind": func(timeout string) (*http.Response, error) {
			req, _ := http.NewRequest("GET", "http://"+bind+"/", nil)
			req.Header.Set("mesh-timeout", timeout) // any spelling
			return http.DefaultClient.Do(req)
		},
		"transport": func(timeout string) (*http.Response, error) {
			req, _ := http.NewRequest("GET", "http://slow/", nil)
			req.Header.Set("Mesh-Timeout", timeout)
			return (&http.Client{Transport: web.Transport()}).Do(req)
		},
	}
	for name, do := range clients {
		t.Run(name, func(t *testing.T) {
			for _, tt := range []struct {
				header string
				max    time.Duration
			}{{"200ms", 200 * time.Millisecond}, {"10s", 500 * time.Millisecond}} {
				start := time.Now()
				resp, err := do(tt.header)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				took := time.Since(start)
				if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get(wire.HeaderError) != string(wire.KindTimeout) {
					t.Errorf("Mesh-Timeout %s: got %s, want 504 timeout", tt.header, resp.Status)
				}
				s := <-got
				if s.left > tt.max || s.header != "" {
					t.Errorf("Mesh-Timeout %s: service had %v left and saw header %q; want at most %v and no header", tt.header, s.left, s.header, tt.max)
				}
				t.Logf("Mesh-Timeout %s: answered after %v", tt.header, took)
			}
			resp, err := do("soon")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(wire.HeaderError) != string(wire.KindBadRequest) {
				t.Errorf("Mesh-Timeout soon: got %s, want 400 bad-request", resp.Status)
			}
		})
	}
}

// TestClientStartBy (issue 21, the fault suite's frozen caller agent): a
// client that gives its deadline as an absolute time (Mesh-Start-By, Unix
// milliseconds) is not sent past it, however late its agent reads the
// request (an agent frozen or starved with it in its socket): one already
// past is answered 504 timeout and reaches no service; one ahead bounds
// the call's deadline, sooner than its Mesh-Timeout.
func TestClientStartBy(t *testing.T) {
	b := meshtest.Broker(t)
	served := make(chan time.Duration, 10)
	startAgent(t, b, Config{Service: "pay"}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, ok := r.Context().Deadline()
			if !ok {
				served <- math.MaxInt64 // no deadline: all the time in the world
				return
			}
			served <- time.Until(d)
		}))
	})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeHTTPProxy)
	do := func(startBy time.Time) *http.Response {
		req, _ := http.NewRequest("POST", "http://pay/", nil)
		req.Header.Set("Mesh-Timeout", "10s")
		req.Header.Set("Mesh-Start-By", strconv.FormatInt(startBy.UnixMilli(), 10))
		resp, err := proxyClient(proxy).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := do(time.Now().Add(-time.Second)); resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get(wire.HeaderError) != string(wire.KindTimeout) {
		t.Errorf("a start-by a second ago: %s %q, want 504 timeout", resp.Status, resp.Header.Get(wire.HeaderError))
	}
	select {
	case <-served:
		t.Fatal("the service ran a call whose client's deadline had passed")
	default:
	}
	if resp := do(time.Now().Add(2 * time.Second)); resp.StatusCode != http.StatusOK {
		t.Fatalf("a start-by 2 s ahead: %s", resp.Status)
	}
	if left := <-served; left > 2500*time.Millisecond {
		t.Errorf("the service had %v left, want at most the client's 2 s (not its Mesh-Timeout's 10 s)", left)
	}
	req, _ := http.NewRequest("POST", "http://pay/", nil)
	req.Header.Set("Mesh-Start-By", "soon")
	resp, err := proxyClient(proxy).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed Mesh-Start-By: %s, want 400", resp.Status)
	}
}
