// Package headerbudget bounds the request header bytes that the requests
// of one HTTP/2 connection hold at once, on every listener of the mesh
// that speaks HTTP/2.
//
// The libraries bound a request's header list while they decode it
// (SETTINGS_MAX_HEADER_LIST_SIZE) and the streams a connection has open
// at once (SETTINGS_MAX_CONCURRENT_STREAMS), so a connection may hold
// their product: 100 lists of about 67 KB. A [Budget] bounds their sum
// too, to [Max] (1 MiB) by default, which ordinary requests (a few
// kilobytes each) never reach: a request past it is refused, as a request
// over the per-request limit is, headers-too-large (431 over HTTP, gRPC's
// ResourceExhausted), and its headers are released when its handler
// returns. The budget travels with the connection: in its context
// ([NewContext], from an http.Server's ConnContext), or, for a grpc.Server
// serving a listener, in its remote address ([Listen]); [Hold] takes from
// it where a handler starts. Decision 106.
package headerbudget
