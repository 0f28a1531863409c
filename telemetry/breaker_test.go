package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

func staticPolicies(t *testing.T, yaml string) *live.Source {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return live.Static(f)
}

// upstream is a real HTTP server that answers 500 while failing is set.
func upstream(t *testing.T, failing *atomic.Bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing != nil && failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// labelSets lists the distinct values of the given labels among family's
// samples, as "a/b" strings, sorted.
func labelSets(fams map[string]*dto.MetricFamily, family string, names ...string) []string {
	seen := map[string]bool{}
	for _, m := range fams[family].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		var vals []string
		for _, n := range names {
			vals = append(vals, labels[n])
		}
		seen[strings.Join(vals, "/")] = true
	}
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

const breakerMesh = `version: 1
services:
  web: {}
  orders:
    subsets: [v1, v2]
    policy:
      retries: {attempts: 1}
      circuit_breaker: {failure_ratio: 50%, window: 10s, min_requests: 3, open_for: 200ms, half_open_probes: 2}
`

// TestBreakerStateMetrics: calls to orders@v1, whose upstream fails,
// open its breaker, and /metrics shows it open for exactly that
// destination while orders@v2 stays closed; once the upstream recovers,
// the first probe after open_for makes it half-open and the second closes
// it, each change counted once.
func TestBreakerStateMetrics(t *testing.T) {
	b := meshtest.Broker(t)
	src := staticPolicies(t, breakerMesh)
	var failing atomic.Bool
	failing.Store(true)
	startAgent(t, b, agent.Config{Service: "orders", Subset: "v1", Upstream: upstream(t, &failing), Policies: src}, nil)
	startAgent(t, b, agent.Config{Service: "orders", Subset: "v2", Upstream: upstream(t, nil), Policies: src}, nil)
	tel := newTelemetry(t, telemetry.Config{})
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: tel, Policies: src}, nil)
	client := &http.Client{Transport: web.Transport()}

	state := func(fams map[string]*dto.MetricFamily, subset string) string {
		var on []string
		for _, st := range []string{"closed", "half_open", "open"} {
			v := value(fams, "natsmesh_outbound_breaker_state", map[string]string{"caller": "web", "callee": "orders", "subset": subset, "state": st})
			if v != 0 {
				on = append(on, fmt.Sprintf("%s=%v", st, v))
			}
		}
		return strings.Join(on, " ")
	}
	transitions := func(fams map[string]*dto.MetricFamily, subset, to string) float64 {
		return value(fams, "natsmesh_outbound_breaker_transitions_total", map[string]string{"caller": "web", "callee": "orders", "subset": subset, "to": to})
	}

	for range 3 {
		if resp := get(t, client, "http://v1.orders/x", nil); resp.StatusCode != 500 {
			t.Fatalf("v1: status %d, want the upstream's 500", resp.StatusCode)
		}
	}
	if resp := get(t, client, "http://v1.orders/x", nil); resp.Header.Get(wire.HeaderError) != string(wire.KindCircuitOpen) {
		t.Fatalf("v1 after 3 failures: %d %q, want circuit-open", resp.StatusCode, resp.Header.Get(wire.HeaderError))
	}
	for range 3 {
		if resp := get(t, client, "http://v2.orders/x", nil); resp.StatusCode != 200 {
			t.Fatalf("v2: status %d", resp.StatusCode)
		}
	}
	fams := scrape(t, tel)
	if got := state(fams, "v1"); got != "open=1" {
		t.Errorf("v1 breaker: %s, want open=1", got)
	}
	if got := state(fams, "v2"); got != "closed=1" {
		t.Errorf("v2 breaker: %s, want closed=1", got)
	}
	// Three series (one per state) for each of the two destinations, and
	// no other destination.
	if got, want := labelSets(fams, "natsmesh_outbound_breaker_state", "callee", "subset", "state"),
		[]string{"orders/v1/closed", "orders/v1/half_open", "orders/v1/open", "orders/v2/closed", "orders/v2/half_open", "orders/v2/open"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("breaker series %v, want %v", got, want)
	}
	if got := transitions(fams, "v1", "open"); got != 1 {
		t.Errorf("v1 transitions to open: %v, want 1", got)
	}
	if got := value(fams, "natsmesh_outbound_breaker_transitions_total", map[string]string{"subset": "v2"}); got != 0 {
		t.Errorf("v2 transitions: %v, want 0", got)
	}
	// The refusal is a mesh error of the call, as before.
	if got := value(fams, "natsmesh_outbound_requests_total", map[string]string{"callee": "orders", "subset": "v1", "mesh_error": "circuit-open"}); got != 1 {
		t.Errorf("circuit-open calls: %v, want 1", got)
	}
	// $SRV.STATS carries the open breaker, and natsmesh stat shows it on
	// the edge.
	if got := fmt.Sprint(web.Stats().Breakers); got != "[{orders v1 open 1}]" {
		t.Errorf("web's snapshot breakers %s", got)
	}
	sample, err := meshstat.Gather(context.Background(), meshtest.Conn(t, b), meshstat.GatherOptions{Quiet: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rep := meshstat.Compute(meshstat.Sample{}, sample)
	for _, e := range rep.Edges {
		if e.Caller == "web" && e.Callee == "orders" && fmt.Sprint(e.Breakers) != "map[open:1]" {
			t.Errorf("edge web -> orders: breakers %v", e.Breakers)
		}
	}
	var table strings.Builder
	if err := meshstat.WriteTable(&table, rep); err != nil || !strings.Contains(table.String(), "breakers: open=1") {
		t.Errorf("natsmesh stat (%v):\n%s", err, table.String())
	}

	failing.Store(false)
	meshtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if resp := get(t, client, "http://v1.orders/x", nil); resp.StatusCode != 200 {
			return errors.New("v1 still " + resp.Header.Get(wire.HeaderError))
		}
		return nil
	})
	fams = scrape(t, tel)
	if got := state(fams, "v1"); got != "half_open=1" {
		t.Errorf("v1 breaker after one probe: %s, want half_open=1", got)
	}
	if resp := get(t, client, "http://v1.orders/x", nil); resp.StatusCode != 200 {
		t.Fatalf("second probe: status %d", resp.StatusCode)
	}
	fams = scrape(t, tel)
	if got := state(fams, "v1"); got != "closed=1" {
		t.Errorf("v1 breaker after two probes: %s, want closed=1", got)
	}
	for _, to := range []string{"open", "half_open", "closed"} {
		if got := transitions(fams, "v1", to); got != 1 {
			t.Errorf("v1 transitions to %s: %v, want 1", to, got)
		}
	}
	if got := web.Stats().Breakers; len(got) != 0 {
		t.Errorf("snapshot breakers after recovery: %v, want none", got)
	}
}

const ejectMesh = `version: 1
services:
  web: {}
  pay:
    inbound:
      passive_health: {failure_ratio: 50%, window: 1s, min_requests: 5, cool_off: 300ms, max_ejected: 50%}
`

// TestEjectedMetric: the instance passive health takes out shows
// natsmesh_ejected 1 and natsmesh_serving 0 on its own /metrics while its
// healthy sibling shows 0 and 1; after the cool-off it is back: 0 and 1.
func TestEjectedMetric(t *testing.T) {
	b := meshtest.Broker(t)
	src := staticPolicies(t, ejectMesh)
	var failing atomic.Bool
	failing.Store(true)
	aTel, bTel := newTelemetry(t, telemetry.Config{}), newTelemetry(t, telemetry.Config{})
	startAgent(t, b, agent.Config{Service: "pay", Upstream: upstream(t, &failing), Policies: src, Telemetry: aTel}, nil)
	startAgent(t, b, agent.Config{Service: "pay", Upstream: upstream(t, nil), Policies: src, Telemetry: bTel}, nil)
	web := startAgent(t, b, agent.Config{Service: "web", Policies: src}, nil)
	client := &http.Client{Transport: web.Transport()}

	flags := func(tel *telemetry.Telemetry) string {
		fams := scrape(t, tel)
		pay := map[string]string{"service": "pay", "subset": ""}
		return fmt.Sprintf("serving=%v ejected=%v", value(fams, "natsmesh_serving", pay), value(fams, "natsmesh_ejected", pay))
	}
	if got := flags(aTel); got != "serving=1 ejected=0" {
		t.Errorf("a before: %s", got)
	}
	meshtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		// POST: not retried, so every failure is the instance's own.
		do(t, client, http.MethodPost, "http://pay/", nil)
		if got := flags(aTel); got != "serving=0 ejected=1" {
			return errors.New("a: " + got)
		}
		return nil
	})
	if got := flags(bTel); got != "serving=1 ejected=0" {
		t.Errorf("b while a is out: %s", got)
	}
	failing.Store(false)
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := flags(aTel); got != "serving=1 ejected=0" {
			return errors.New("a after the cool-off: " + got)
		}
		return nil
	})
}

const hedgeMesh = `version: 1
services:
  web: {}
  orders:
    routes:
      - name: reads
        match: {methods: [GET]}
        policy:
          retries: {attempts: 1}
          hedge: {delay: 20ms, max: 1}
`

// TestInFlightAndHedges: while a call waits on a slow service, hedged
// once, the caller's in-flight gauge shows one call and one hedge counted,
// and the service's shows both attempts in flight; afterwards both are 0.
func TestInFlightAndHedges(t *testing.T) {
	b := meshtest.Broker(t)
	src := staticPolicies(t, hedgeMesh)
	release := make(chan struct{})
	var arrived atomic.Int32
	ordersTel := newTelemetry(t, telemetry.Config{})
	startAgent(t, b, agent.Config{Service: "orders", Telemetry: ordersTel, Policies: src},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			io.WriteString(w, "ok")
		}))
	webTel := newTelemetry(t, telemetry.Config{})
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: webTel, Policies: src}, nil)
	client := &http.Client{Transport: web.Transport()}

	done := make(chan int)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://orders/slow", nil)
		resp, err := client.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	web2orders := map[string]string{"caller": "web", "callee": "orders"}
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		out, in := value(scrape(t, webTel), "natsmesh_outbound_active", web2orders), value(scrape(t, ordersTel), "natsmesh_inbound_active", web2orders)
		if out != 1 || in != 2 || arrived.Load() != 2 {
			return fmt.Errorf("in flight: outbound %v, inbound %v, arrived %d", out, in, arrived.Load())
		}
		return nil
	})
	if got := value(scrape(t, webTel), "natsmesh_outbound_hedges_total", map[string]string{"caller": "web", "callee": "orders", "route": "reads"}); got != 1 {
		t.Errorf("hedges %v, want 1", got)
	}
	if got := value(scrape(t, webTel), "natsmesh_outbound_retries_total", web2orders); got > 0 {
		t.Errorf("retries %v, want none", got)
	}
	close(release)
	if st := <-done; st != 200 {
		t.Fatalf("status %d", st)
	}
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		out, in := value(scrape(t, webTel), "natsmesh_outbound_active", web2orders), value(scrape(t, ordersTel), "natsmesh_inbound_active", web2orders)
		if out != 0 || in != 0 {
			return fmt.Errorf("after the call: outbound %v, inbound %v in flight", out, in)
		}
		return nil
	})
}

// TestBreakerSeriesBounded: breakers to more destinations than the
// metrics' bound show the rest under callee _other, counted; a breaker
// its source no longer lists (dropped from the resilience cache) leaves
// the gauge at the next scrape.
func TestBreakerSeriesBounded(t *testing.T) {
	tel := newTelemetry(t, telemetry.Config{})
	var list atomic.Pointer[[]telemetry.Breaker]
	tel.ObserveBreakers("web", func() []telemetry.Breaker { return *list.Load() })
	var many []telemetry.Breaker
	for i := range 600 {
		many = append(many, telemetry.Breaker{Service: fmt.Sprintf("s%d", i), State: telemetry.BreakerOpen})
	}
	many = append(many, telemetry.Breaker{Subject: "demo.clock", State: telemetry.BreakerHalfOpen})
	list.Store(&many)
	fams := scrape(t, tel)
	callees := labelSets(fams, "natsmesh_outbound_breaker_state", "callee")
	if len(callees) != 501 {
		t.Errorf("%d callees, want 500 and _other", len(callees))
	}
	if got := value(fams, "natsmesh_outbound_breaker_state", map[string]string{"callee": "_other", "state": "open"}); got != 100 {
		t.Errorf("_other open = %v, want 100", got)
	}
	if got := value(fams, "natsmesh_outbound_breaker_state", map[string]string{"callee": "_other", "state": "half_open"}); got != 1 {
		t.Errorf("_other half_open = %v, want 1 (the NATS-native route's, past the bound)", got)
	}
	if got := value(fams, "natsmesh_outbound_breaker_state", map[string]string{"state": "open"}); got != 600 {
		t.Errorf("open breakers = %v, want 600", got)
	}

	few := []telemetry.Breaker{{Service: "s0", Subset: "_", State: telemetry.BreakerClosed}}
	list.Store(&few)
	fams = scrape(t, tel)
	if got := labelSets(fams, "natsmesh_outbound_breaker_state", "caller", "callee", "subset", "state"); fmt.Sprint(got) !=
		"[web/s0//closed web/s0//half_open web/s0//open]" {
		t.Errorf("after the others were dropped: series %v", got)
	}
	tel.BreakerChanged("web", telemetry.Breaker{Subject: "demo.clock", State: telemetry.BreakerOpen})
	tel.BreakerChanged("web", telemetry.Breaker{Service: "s1", State: telemetry.BreakerHalfOpen})
	fams = scrape(t, tel)
	if got := value(fams, "natsmesh_outbound_breaker_transitions_total", map[string]string{"callee": "_other", "to": "open"}); got != 1 {
		t.Errorf("transitions of a destination past the bound: %v, want 1 under _other", got)
	}
	if got := value(fams, "natsmesh_outbound_breaker_transitions_total", map[string]string{"callee": "s1", "to": "half_open"}); got != 1 {
		t.Errorf("transitions of s1: %v, want 1", got)
	}
}
