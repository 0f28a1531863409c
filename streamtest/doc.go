// Package streamtest holds the process-level tests of streams (issue 18)
// and of instances that die or freeze (issue 21):
// the broker and two agents run as `natsmesh broker` and `natsmesh agent`
// processes, built once without the race detector, and the service and
// its client are in the test process, as an application and its user
// would be (the fault suite's services excepted, below). The package has
// no code of its own.
//
//   - TestGigabyteThroughAgents: a 1 GB upload and a 1 GB download
//     (256 MiB unless NATSMESH_BIG=1; `make bench` runs the 1 GB one)
//     through the caller's agent, from its HTTP proxy and a bound port,
//     and the callee's agent, bytes checked by SHA-256, each agent's peak
//     RSS under 64 MiB, the throughput logged beside a direct transfer.
//   - TestSlowReader: a service that would write 1 GB to a client reading
//     at 1 MB/s stays blocked a few MB ahead of its client, and every
//     agent stays under 64 MiB: flow control holds across both agents.
//   - TestKillMidStream: killing the caller's agent, the callee's agent,
//     the service or the broker mid-stream (server-sent events, a long
//     download, a long upload with its length and a chunked one, and a
//     gRPC server stream, at once) ends the other side's streams with an
//     error, never a clean end nor a hang, within the idle timeout (the
//     agents run with --stream-idle 2s), and the test process's
//     goroutines come back to their baseline.
//   - TestFrozenInstance (issue 21): one of two instances' agents frozen
//     (SIGSTOP) for 10 s under load loses its share of the calls within
//     seconds (the broker pings its clients every 2 s), and when it wakes
//     none of the calls its socket held starts after its client's
//     deadline (Mesh-Start-By). TestClientGoneCancels: a client that
//     gives up cancels the service's call through both agents.
//     TestKilledCalleeAnswersEarly: a POST whose callee's agent dies gets
//     503 connection-lost within the idle timeout, not at its deadline.
//   - TestLedger: one of two agents killed or drained under POST and GET
//     load, executions counted per request ID at the service: every
//     request one outcome, never its client's own timeout; no POST twice.
//   - The fault suite's cases (issue 21, docs/reliability.md), each a
//     fixed rate of requests with an ID and a deadline, and a ledger
//     written by each instance of the service, a process of its own (this
//     test binary re-executed: chaos_test.go): TestChaos (kills and
//     freezes of a service, its agent and the caller's agent, a drain, a
//     broker's restart, one of three brokers killed, a rolling restart in
//     lame-duck mode), TestChaosNetwork (delay, loss and a partition in
//     network namespaces the test makes), TestChaosOverload (10x a
//     service's capacity) and TestSoak (memory and goroutines flat). Each
//     checks every request got one outcome, the service's answer or an
//     explicit mesh error, none ran twice as a POST or started after its
//     client's deadline, and logs its figures in one line. They run with
//     NATSMESH_CHAOS=1 (`make chaos`) and NATSMESH_SOAK=1 (`make soak`);
//     `make test` runs only TestChaos's broker restart. A case that breaks
//     a rule for a mesh defect names it and is skipped with it, after
//     every other rule is checked. TestCheck holds the check itself to
//     its rules, on outcomes and ledgers made up for it.
//
// Each agent's peak RSS is VmHWM in /proc/<pid>/status, reset before each
// measured stream through clear_refs where the kernel allows. Speed is
// logged, never asserted: `natsmesh bench` measures it (its streaming
// scenarios).
package streamtest
