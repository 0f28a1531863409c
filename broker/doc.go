// Package broker embeds nats-server as the mesh's default broker.
//
// A [Config] describes one server: its client listener, monitoring endpoint,
// JetStream store, optional cluster routes, leaf node links and TLS. [New]
// validates the configuration once and returns a [Broker] whose lifecycle is
// explicit: [Broker.Start] does not block, [Broker.Ready] waits until clients
// can connect, and [Broker.Shutdown] drains in lame-duck mode and is safe to
// call more than once, concurrently, or before Start.
//
// Errors are prefixed "broker: ". Invalid configuration wraps [ErrConfig];
// a listener that cannot bind (for example "address already in use") is
// reported by Start or Ready as a "broker: listen ADDR: ..." error that wraps
// the underlying system error.
//
// The broker is the same nats-server a stock deployment runs, so a mesh may
// equally point its agents at an existing NATS system instead.
package broker
