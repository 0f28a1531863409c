// Package egress is the path out of the mesh: the calls a service makes
// through its agent's HTTP proxy to hosts that are no mesh services
// (wire.ReadHost's rule: "api.stripe.com", "127.0.0.1:8080",
// "localhost", a name the mesh file does not declare).
//
// A [Handler] serves them, behind the agent's meshhttp.Proxy (its Egress
// hook). The mesh file's egress section (policies.Egress) decides, per
// call, in the version current when the call starts:
//
//   - whether the host may be called: any host in mode allow_any (the
//     default), only the hosts listed under egress.hosts in mode
//     registry_only; a call to any other is answered 403 egress-denied,
//     naming the host and the setting that would allow it. An agent that
//     holds no mesh file while it must (agent.Config.Policies, "Fail
//     closed") answers no-mesh-file;
//   - how the call is labelled: by its entry in egress.hosts when the
//     file lists the host, else as one series of all the other hosts
//     (policies.EgressOther), so the metrics stay bounded however many
//     hosts a service calls;
//   - the policy of a listed host: its timeout, retries, bulkhead and
//     circuit breaker (package resilience, by the host's entry); an
//     unlisted host gets its call's deadline only.
//
// A call is a pipeline.Call whose Egress field is the host's entry, sent
// through the egress pipeline: Config.Middleware (internal/chain's Egress:
// telemetry of the call, [Gate], the resilience policies, telemetry of
// each attempt), then the host itself, dialed by the agent:
//
//   - plain HTTP (GET http://api.example.com/x through the proxy) is a
//     meshhttp.Proxy whose sender ends in meshhttp.Egress, so it streams,
//     takes the client's Mesh-Timeout, and answers mesh errors as every
//     entry point does;
//   - CONNECT (HTTPS, or any TCP stream) is a call whose attempt dials the
//     host; once dialed, the agent answers 200 and copies bytes both ways
//     until either side closes. The call, as the telemetry and the breaker
//     see it, is the dial: its latency is the time to connect, its failure
//     a refused or timed-out connection. A tunnel is carried over HTTP/1.1
//     only.
//
// Calls to hosts outside the mesh are sent by the agent, not over NATS:
// the broker neither sees nor authorizes them. Egress is no security
// boundary unless the network leaves the service no other way out
// (docs/security.md).
package egress
