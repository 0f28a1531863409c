package resilience_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// slack covers the rounding of the propagated timeout and the clock reads
// around it (all agents share this process's clock).
const slack = 5 * time.Millisecond

// The caller's deadline crosses two hops: A calls B, whose handler calls C
// through B's own agent with the request's context; C's call ends when
// A's budget is spent, not later.
func TestDeadlineAcrossTwoHops(t *testing.T) {
	b := meshtest.Broker(t)
	type seen struct {
		deadline time.Time
		err      error
	}
	cSaw := make(chan seen, 1)
	release := make(chan struct{})
	serve(t, b, "c", func(w http.ResponseWriter, r *http.Request) {
		d, _ := r.Context().Deadline()
		<-r.Context().Done()
		cSaw <- seen{d, r.Context().Err()}
		<-release // an answer now would race B's own timer
	})
	t.Cleanup(func() { close(release) }) // before the agents' shutdown
	agenttest.Start(t, b, agent.Config{Service: "b"}, func(a *agent.Agent) error {
		hc := &http.Client{Transport: a.Transport()}
		return a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://c/work", nil)
			resp, err := hc.Do(req)
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		}))
	})
	hc := client(t, b, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	aDeadline, _ := ctx.Deadline()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://b/work", nil)
	// A sees a 504: its own timeout, or B's answer relaying C's timeout
	// when that reaches A first (B's deadline is a little before A's).
	status, kind, _ := do(t, hc, req)
	if status != http.StatusGatewayTimeout {
		t.Errorf("A got status %d, %q; want 504", status, kind)
	}
	select {
	case s := <-cSaw:
		if s.err != context.DeadlineExceeded {
			t.Errorf("C's call ended with %v, want its deadline", s.err)
		}
		// Mesh-Timeout is relative, as grpc-timeout is: each hop's transit
		// (and, under -race, its scheduling) is added to the deadline, not
		// subtracted. Without propagation C would get the default 30s.
		if s.deadline.After(aDeadline.Add(100 * time.Millisecond)) {
			t.Errorf("C's deadline is %v after A's", s.deadline.Sub(aDeadline))
		}
	case <-time.After(3 * time.Second):
		t.Fatal("C's call did not end")
	}
}

// A slow attempt is cut at attempt_timeout and retried; the receiver is
// given only the attempt's time (Mesh-Timeout).
func TestAttemptTimeout(t *testing.T) {
	b := meshtest.Broker(t)
	var arrivals atomic.Int32
	lefts := make(chan time.Duration, 4)
	// The slow attempt holds on past its deadline, until the test ends:
	// answering as its deadline passes would race the caller's own timer.
	release := make(chan struct{})
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		d, _ := r.Context().Deadline()
		lefts <- time.Until(d)
		if arrivals.Add(1) == 1 {
			<-release
			return
		}
		io.WriteString(w, "second")
	})
	t.Cleanup(func() { close(release) }) // before the agent's shutdown
	src, _ := meshFile(t, `
version: 1
services:
  orders:
    policy:
      timeout: 5s
      attempt_timeout: 400ms
      retries: {backoff: 1ms}
`)
	log := &attemptLog{}
	hc := client(t, b, src, func(c *agent.Config) { c.Outbound = []pipeline.OutboundMiddleware{log.middleware} })
	req, _ := http.NewRequest(http.MethodGet, "http://orders/x", nil)
	status, kind, body := do(t, hc, req)
	if status != http.StatusOK || body != "second" {
		t.Fatalf("status %d %q, body %q; want the second attempt's answer", status, kind, body)
	}
	if attempts, retries, _ := log.counts(); attempts != 2 || retries != 1 {
		t.Errorf("attempts %d, retries %d; want 2 and 1", attempts, retries)
	}
	for range 2 {
		if left := <-lefts; left > 400*time.Millisecond+slack {
			t.Errorf("the receiver was given %v, want at most the attempt's 400ms", left)
		}
	}
}

// The route's timeout bounds the whole call: the receiver is given no
// more, the caller gets a timeout, and a POST is not retried after it.
func TestOverallTimeout(t *testing.T) {
	b := meshtest.Broker(t)
	var served atomic.Int32
	lefts := make(chan time.Duration, 4)
	release := make(chan struct{})
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		d, _ := r.Context().Deadline()
		lefts <- time.Until(d)
		<-release
	})
	t.Cleanup(func() { close(release) }) // before the agent's shutdown
	src, _ := meshFile(t, `
version: 1
services:
  orders:
    policy:
      timeout: 150ms
`)
	hc := client(t, b, src)
	req, _ := http.NewRequest(http.MethodPost, "http://orders/x", nil)
	status, kind, _ := do(t, hc, req)
	if status != http.StatusGatewayTimeout || kind != string(wire.KindTimeout) {
		t.Errorf("status %d, %q; want 504 timeout", status, kind)
	}
	if left := <-lefts; left > 150*time.Millisecond+slack {
		t.Errorf("the receiver was given %v, want at most the route's 150ms", left)
	}
	if served.Load() != 1 {
		t.Errorf("%d attempts, want 1", served.Load())
	}
}

// The route the routing middleware matched (pipeline.WithRoute) picks the
// route's policy; a call without one gets the service's.
func TestRoutePolicy(t *testing.T) {
	b := meshtest.Broker(t)
	var served atomic.Int32
	serve(t, b, "orders", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	src, _ := meshFile(t, `
version: 1
services:
  orders:
    policy:
      retries: {attempts: 1}
      circuit_breaker: {enabled: false}
    routes:
      - name: reads
        match: {methods: [GET]}
        policy:
          retries: {attempts: 4, backoff: 1ms}
`)
	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	route := func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if c.Op == http.MethodGet {
				ctx = pipeline.WithRoute(ctx, "reads")
			}
			return next.Send(ctx, c)
		})
	}
	out, err := pipeline.NewOutbound(nc, pipeline.OutboundConfig{
		Middleware: []pipeline.OutboundMiddleware{route, resilience.New(resilience.Config{Policies: src})},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		want   int32
	}{{http.MethodGet, 4}, {http.MethodPut, 1}} {
		served.Store(0)
		c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: tc.method, Path: "/x",
			Header: nats.Header{wire.HeaderMethod: {tc.method}, wire.HeaderPath: {"/x"}}}
		if _, err := out.Send(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if served.Load() != tc.want {
			t.Errorf("%s: %d attempts, want %d", tc.method, served.Load(), tc.want)
		}
	}
}
