// Package h1client makes the plain HTTP/1.1 round trips of package
// meshhttp's Upstream to its local service in the caller's goroutine,
// over connections it keeps alive itself; anything else it hands to an
// *http.Transport (Client.Fallback).
//
// net/http's Transport hands each request to a connection's writer
// goroutine and its answer back from the connection's reader goroutine:
// two goroutine hand-offs a call, and a Transport's bookkeeping (a
// wantConn, a persistConn's channels, the rewind of the body), which a
// sidecar pays on every call to a service on loopback (issue 20,
// docs/benchmarks.md). A Client writes the request (http.Request.Write)
// and reads the answer (http.ReadResponse) itself: the same code of
// net/http that the Transport runs, so what crosses is the same bytes,
// parsed by the same rules.
//
// Only what needs nothing more takes this path: scheme http and a host
// (port 80 when it names none), a body that is whole (none, or a known
// length of at most MaxBody that http.Request.GetBody reads again), no
// trailers, no protocol upgrade, no Expect. TLS upstreams (HTTP/2 by
// ALPN), streamed request bodies (full duplex: the service may answer
// while the body is still being sent, as it may to a body larger than
// MaxBody) and upgrades go to Fallback, and every request does when
// Fallback has a Proxy, disables keep-alives, compresses, or bounds what
// a Client would not (MaxConnsPerHost, ResponseHeaderTimeout), or dials
// by its deprecated Dial, or speaks HTTP/2 without TLS (Protocols).
//
// A connection is reused once its answer's body has been read to its
// end (an answer without one, at once) and closed, and neither side
// asked to close it; never after an answer below 200. Before it is
// reused, a look at its socket (Linux: a peek that does not wait) drops
// it if its server has closed it or sent bytes nobody asked for; one
// idle for the Fallback's IdleConnTimeout is closed. A request that
// fails on a reused connection before any byte of answer came is made
// again on a new one only when its method is idempotent, as net/http's
// Transport does: a POST is never sent twice.
package h1client
