// Package httpguard hardens the mesh's HTTP listeners, which serve
// meshhttp.Proxy values (the agent's proxy and bind ports, the edge
// gateway), the same way: a listener wrapper that detects ambiguous
// request framing (request smuggling) before Go's server reframes it, and
// a handler wrapper that answers such requests 400 and closes the
// connection.
package httpguard
