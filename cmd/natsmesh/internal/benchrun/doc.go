// Package benchrun runs natsmesh's side-by-side benchmark: on loopback, an
// echo service and each way of reaching it (direct HTTP and gRPC, the
// natsmesh sidecar pair, natsmesh in process, a pair of nginx reverse
// proxies), measured one after another under the same loads with
// internal/loadgen.
//
// Every component under test (broker, agents, echo service, nginx) is a
// separate process, the natsmesh binary re-executed as `natsmesh broker`,
// `natsmesh agent` and the hidden `natsmesh bench-echo`, so that its CPU
// time (utime+stime from /proc/<pid>/stat) and peak RSS (VmHWM from
// /proc/<pid>/status, reset before each load through clear_refs) are its
// own. The bench process itself is the client: the load generator, and in
// the in-process scenarios the client-side agent library.
//
// Run returns a Report; Report.WriteTable prints it and the JSON encoding of
// the Report is the machine-readable result.
package benchrun
