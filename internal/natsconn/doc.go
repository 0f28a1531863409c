// Package natsconn connects a mesh component (a sidecar agent, the edge
// gateway, a natsmesh command) to NATS as one service: replies arrive under
// the service's inbox prefix (wire.InboxPrefix), the first connection is
// waited for, credentials the server refuses fail at once, and the
// connection reconnects forever once up. agent.Connect and the edge
// bridge's Edge both connect through it, so the two read the same settings
// ([Config], exported by both as ConnectConfig) the same way.
//
// Its errors carry no package prefix: each public caller presents them as
// its own ("agent: no NATS connection to ...", "bridge: ..."). Settings that
// can never connect are a [*ConfigError], reported by [Config.Validate]
// before anything dials.
package natsconn
