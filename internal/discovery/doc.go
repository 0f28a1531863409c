// Package discovery answers the NATS service discovery protocol of
// nats.go/micro ($SRV.PING, $SRV.INFO and $SRV.STATS, to all services, by
// name, and by name and instance ID) for a mesh component, with micro's
// own JSON types, so `nats micro ls`, `nats micro info` and `nats micro
// stats` show agents and gateways like any micro service.
//
// The agent does not register through micro.AddService: micro endpoints
// serve their own subscriptions, while the agent's calls arrive on queue
// subscriptions it withdraws and restores with health and dispatches
// through its inbound pipeline. A [Responder] only answers discovery: its
// endpoints describe the agent's inbound subjects, with the counts the
// inbound pipeline records ([Endpoint.Record]), and the metadata is read
// at each answer, so it shows the serving state live.
//
// A [Responder] answers any reply subject but those a discovery answer
// could harm ([Answerable]): mesh call subjects, NATS's "$" namespaces
// (JetStream, KV, system, $SRV itself) and service-import replies.
package discovery
