package agent_test

import (
	"testing"
)

// allocBudgets are the heap allocations one round trip may make through
// each entry point, the whole process counted (client, both agents, the
// in-process broker, the echo service), with 1 KiB each way: the setups
// of bench_test.go, measured by testing.AllocsPerRun, which is
// deterministic where a timing is not, so a change that makes the hot
// path allocate more fails here, not in a benchmark nobody reads.
//
// Each budget is the count measured when it was set plus under 5% of
// margin (background work: the broker's and the agents' timers). To lower
// one: profile the path (go test -run '^$' -bench BenchmarkAgent<name>
// -benchmem -memprofile mem.out -memprofilerate 1 ./agent/, then go tool
// pprof -sample_index=alloc_objects), cut, measure with -run TestAlloc -v,
// and write the new count plus its margin here (docs/benchmarks.md keeps
// the history).
var allocBudgets = []struct {
	name   string
	budget float64
	setup  func(testing.TB) roundTrip
}{
	// Transport -> NATS -> Handle. 196 measured; was 227 (e783041).
	{"InProcessHTTP", 202, func(tb testing.TB) roundTrip { return inProcessHTTP(tb, noTelemetry) }},
	// ClientConn -> NATS -> GRPCServer. 180; was 210.
	{"InProcessGRPC", 185, inProcessGRPC},
	// Transport -> in-process broker connections -> Handle. 212; was 243.
	{"EmbeddedHTTP", 218, embeddedHTTP},
	// HTTP client -> proxy -> NATS -> agent -> HTTP upstream. 321; was 368.
	{"SidecarHTTP", 331, func(tb testing.TB) roundTrip { return sidecarHTTP(tb, noTelemetry) }},
	// gRPC client -> gRPC proxy -> NATS -> agent -> h2c upstream. 516-517;
	// was 543.
	{"SidecarGRPC", 527, sidecarGRPC},
	// HTTP client -> bind port -> NATS -> agent -> HTTP upstream. 320;
	// was 367.
	{"BindHTTP", 330, bindHTTP},
	// HTTP client -> edge gateway (bridge) -> NATS -> agent -> HTTP
	// upstream. 345; was 392.
	{"GatewayHTTP", 355, gatewayHTTP},
}

// adapterBudgets are those of the HTTP adapters alone (adapters: the
// pipeline answers at once, no NATS request), measured 43 (proxy, bind),
// 53 (gateway), 28 (transport); 47, 57 and 32 at e783041; with no network in the
// path they do not vary (AllocsPerRun floors the mean: a stray
// allocation of another goroutine counts only once per allocRuns), so
// they have no margin.
var adapterBudgets = map[string]float64{"proxy": 43, "bind": 43, "gateway": 53, "transport": 28}

// allocRuns is how many round trips a budget is averaged over.
const allocRuns = 300

func TestAllocsPerRoundTrip(t *testing.T) {
	skipUnderRace(t)
	for _, e := range allocBudgets {
		t.Run(e.name, func(t *testing.T) {
			rt := e.setup(t)
			n := testing.AllocsPerRun(allocRuns, func() { rt(t) })
			t.Logf("%s: %.0f allocations a round trip (budget %.0f)", e.name, n, e.budget)
			if n > e.budget {
				t.Errorf("%s: %.0f allocations a round trip, over its budget of %.0f", e.name, n, e.budget)
			}
		})
	}
}

func TestAllocsPerAdapterCall(t *testing.T) {
	skipUnderRace(t)
	for _, e := range adapters(t) {
		t.Run(e.name, func(t *testing.T) {
			budget, ok := adapterBudgets[e.name]
			if !ok {
				t.Fatalf("no budget for the adapter %s", e.name)
			}
			n := testing.AllocsPerRun(allocRuns, func() { e.rt(t) })
			t.Logf("%s: %.0f allocations a call (budget %.0f)", e.name, n, budget)
			if n > budget {
				t.Errorf("%s: %.0f allocations a call, over its budget of %.0f", e.name, n, budget)
			}
		})
	}
}
