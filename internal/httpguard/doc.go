// Package httpguard hardens the mesh's HTTP listeners, which serve
// meshhttp.Proxy values (the agent's proxy and bind ports, the edge
// gateway), the same way: a listener wrapper that detects ambiguous
// request framing (request smuggling) before Go's server reframes it, and
// a handler wrapper that answers such requests 400 and closes the
// connection, refuses protocol upgrades but HTTP/2's (Upgrade: h2c, which
// it hands to internal/h2c), and bounds the time a body may take. Over
// HTTP/2 only the last applies, with the connection's budget of held
// headers (internal/headerbudget, which ConnContext gives each
// connection): its frames leave nothing to smuggle with.
package httpguard
