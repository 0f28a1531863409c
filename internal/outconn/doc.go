// Package outconn is what the outbound pipeline's calls share of one NATS
// connection (package pipeline's sender): the reply mux of each caller,
// whether the connection is up, and the broker's refusals, each turned
// into the mesh error a caller can act on.
//
// A [Conn] wraps one *nats.Conn, whose handlers it chains in front of the
// connection's own (disconnect, reconnect, async error). It gives each
// caller its reply mux (internal/replymux), made at the caller's first
// call ([Conn.Mux]); a reply subscription the broker refuses fails that
// call at once, unsent, and the caller's calls for a minute after
// without asking the broker again ([RefusedError]: forbidden, saying what
// to do); one the broker refuses later (nats.go subscribes again after a
// reconnect) fails the calls waiting on that mux at once.
//
// A call made while the connection is down waits for it to come back for
// at most the reconnect grace, counted from the loss of the connection,
// not from each attempt ([Conn.Connected]): nothing has been sent when it
// fails, so its error is broker-unavailable, which is safe to retry.
//
// A request in flight is tracked ([Conn.Track]) with the cancellation of
// its context, so that a publish the broker refuses (reported only as an
// asynchronous -ERR naming the subject, read by internal/natsconn) ends
// the requests on that subject at once with forbidden instead of their
// timeouts; [SendError] turns the error of a request into the mesh error
// of the call (that forbidden, no responders naming the destination, and
// broker-unavailable for a request refused before it was sent).
//
// [Conn.Close] closes the reply muxes and fails the calls waiting on them;
// from then on no call is sent. It does not close the NATS connection.
package outconn
