// Package stallwatch tells a frozen local service (a stopped or hung
// process: its kernel still accepts connections, so a TCP connect passes)
// from a slow one (issue 21), for the agent in front of it.
//
// Its evidence is the calls. A [Watch] wraps the handler of every call to
// the service ([Watch.Wrap]), counts those waiting on it, and notes when
// it was last seen alive while one waits: the first call since its last
// answer, or an answer (a call's, or a probe's) while others still wait.
// Once the service has answered none of its calls for [After] (seen by
// the next call to start,
// or by a timer the first unanswered call arms: a frozen service's calls
// fill its agent's concurrency limit, and the later ones are refused
// before they reach the watch), the watch tells its owner at once (Watch.OnStall: the agent runs its health loop without waiting
// for the interval) and, while suspect, adds to the health check
// ([Watch.Check]) a probe that asks the service itself to answer anything
// (Watch.Alive). A service that answers is slow, not frozen (a long
// poll, a long job): nothing happens. One that does not fails its health
// checks, so its agent withdraws it from its queue groups, and until it
// answers again a call still delivered to it is not sent to it but
// refused as nothing ran (wire.KindUpstreamRefused), so its caller sends
// it elsewhere instead of into a socket the service will read when it
// wakes, past the call's deadline.
//
// Every call reads the watch and most write it: its state is atomics,
// with no lock.
package stallwatch
