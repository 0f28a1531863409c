// Package queuehold is an instance's hold on its service's queue groups
// (wire.ServiceSubjects), for the agent's inbound side: the one place its
// queue subscriptions are made and left.
//
// [Hold.Join] subscribes, and flushes after each subscription, so the
// broker knows the interest before the instance reports itself serving,
// and a refused subscription is told at once: nats-server answers a
// subscription outside the user's permissions (a subset the mesh file
// does not declare, another service's credentials) with an -ERR before
// the PONG of the flush, which nats.go records as the connection's last
// error (natsconn.ParseViolation reads it). A refused instance leaves its
// queue groups again, says why once, at Error, with what to do, and asks
// again after Config.RetryAfter (Config.Retry), not before: the refusal
// lasts until the broker's configuration changes. [Hold.WatchRefusals]
// catches the refusals a flush cannot tell, in the connection's async
// error handler: a subscription nats.go sends again after a reconnect,
// one a reload of the broker's configuration withdraws. A refused
// instance subject (wire.InstanceSubject) costs only that: the instance
// keeps its queue groups, says so once, at Warn, and asks for it again
// after Config.RetryAfter while it serves (an agent that serves joins no
// more) and at each Join.
//
// [Hold.Leave] leaves by draining: messages already delivered are still
// served, and it returns once the broker has processed the unsubscribe,
// so when [Hold.Serving] reports false no new call is routed here.
// [Hold.Wait] waits for every drain, a health withdrawal's too, at
// shutdown.
//
// Whether to join (health checks, passive health's cool-offs) is the
// agent's to decide; the hold only declines to join while Config.Out says
// the instance is held out, and once closed.
package queuehold
