// Package upstream is what an agent knows of its local service reached
// over a connection (its upstream): the forms of its address, and the
// probes that ask the service whether it is up.
//
// [Parse] reads the address: http://HOST:PORT with an optional base path,
// https:// the same over TLS, h2c://HOST:PORT for gRPC, h2:// over TLS;
// anything else is refused with the forms that are accepted ([Forms]).
// [GRPC] and [TLS] say what an address speaks, and [LoadTLS] reads the
// PEM files of the TLS settings that reach one.
//
// The probes, each bounded by its context: [Connect] (a TCP connect, and
// a TLS handshake for a service that speaks TLS), [Get] (an HTTP GET of
// a path, 2xx or 3xx healthy), [GRPCHealth] (the gRPC health protocol),
// and [Alive], which asks the service to answer anything at all (OPTIONS *
// of an HTTP service, which Go's server answers without running a
// handler; any gRPC health answer but a timeout or unavailable): the
// stall watch's probe (package internal/stallwatch). How often they run,
// and what their results do, is the agent's health loop's business.
package upstream
