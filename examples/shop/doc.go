// Package shop is the demo mesh that `natsmesh demo` (and `make demo`) runs:
// a few small services wired through natsmesh on one broker, each meshed a
// different way, so one command shows every part working together.
//
//   - inventory: two in-process instances (subsets v1 and v2) serving an
//     http.Handler straight from NATS, no local hop.
//   - orders: a plain HTTP server on loopback with a sidecar-style agent in
//     front of it; it calls inventory through the mesh with an ordinary
//     http.Client whose transport is its agent.
//   - clock: a NATS-native nats.go/micro service that serves its mesh
//     subjects itself, reached from HTTP through the edge gateway.
//   - web: an outbound-only agent whose HTTP proxy lets curl call any
//     service by name (curl -x http://127.0.0.1:15001 http://inventory/...).
//   - the edge gateway, serving outside HTTP clients on one port.
//
// mesh.yaml ([MeshFile]) says who may call whom; `natsmesh demo` generates
// the NATS accounts from it and connects every part with its own NKey.
//
// [Start] runs the services, agents and gateway on connections the caller
// provides. [RunDemo] is all of `natsmesh demo` around it: an embedded
// broker with the generated accounts, the mesh file live in the policies
// bucket ([Policies]), the dashboard at [DashboardPath] on an admin
// listener, and a background [Load] through the gateway; the command only
// parses flags, prints the [Demo]'s addresses and waits.
package shop
