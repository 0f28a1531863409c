// Package host runs mesh components in one process with what they share:
// each one's NATS connection (made with its inbox prefix and credentials,
// package natsconn), the policy source (package policies/live), the admin
// endpoint (package internal/admin), the listeners, and the order in which
// all of it starts and stops. agent.Sidecar (one agent) and bridge.Edge (the
// edge gateway) are configurations of a [Host]; node mode (one process
// fronting every service of a machine) is a Host with several parts.
//
// One lifecycle, for the host and for each [Component] it runs:
//
//   - [New] validates and does no I/O: it neither listens, reads a file,
//     dials nor starts a goroutine.
//   - [Host.Start] opens the listeners and the admin endpoint (so a port
//     in use is reported before anything connects), loads a local mesh
//     file, connects each part (retrying within ctx), starts the policy
//     source, builds and starts each component, then serves the listeners.
//   - [Host.Readiness] says why the host is not ready, [Host.Ready] waits
//     until it is; /readyz answers the same.
//   - [Host.Shutdown] is idempotent and safe during Start: it cancels a
//     Start still under way, waits for it, and then stops what it made, in
//     this order: the components (each stops taking new work on its
//     listeners, drains its inbound side and closes its outbound side),
//     the listeners left, the policy source, the connections (drained),
//     the admin endpoint (it answers /readyz "shutting down" until then),
//     and the telemetry last.
//
// The package is internal while node mode settles the shape of a part;
// programs embed an agent.Sidecar or a bridge.Edge.
package host
