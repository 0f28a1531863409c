// Package benchrun runs natsmesh's side-by-side benchmark: on loopback, an
// echo service (internal/benchecho) and each way of reaching it (direct
// HTTP and gRPC, the natsmesh sidecar pair, natsmesh in process, a pair of
// nginx reverse proxies), measured one after another under the same loads
// with internal/loadgen; and, with Options.Scaling, the sidecar pair as
// one thing grows (services registered, body size, connections, a route
// hop between brokers).
//
// Every component under test (broker, agents, echo service, nginx) is a
// separate process (internal/benchproc), the natsmesh binary re-executed
// as `natsmesh broker`, `natsmesh agent` and the hidden `natsmesh
// bench-echo`, so that its CPU time, peak RSS, context switches and system
// calls are its own. The bench process itself is the client: the load
// generator, and in the in-process scenarios the client-side agent
// library. With Options.Profile each measured load also leaves every
// process's CPU and allocation profiles.
//
// Run returns an internal/benchreport Report: its tables, its JSON (the
// recorded results file) and its comparison with an earlier run are that
// package's.
package benchrun
