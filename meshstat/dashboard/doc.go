// Package dashboard serves the mesh's live service graph as a web page:
// plain HTML, CSS and JavaScript embedded in the binary (no build step, no
// CDN), which polls a JSON endpoint of the same handler and draws the
// services as nodes and who-calls-whom as edges, each with its golden
// metrics (instances, requests per second, success rate, p99 latency), in
// SVG with a layered layout, and tables below.
//
// [Handler] serves, relative to where it is mounted (the edge bridge's
// admin port mounts it at /ui/, natsmesh ui at /):
//
//	GET /            the page, with the latest report in it (so it
//	                 paints the mesh at once, not "loading…")
//	GET /app.js, /style.css
//	GET /api/graph   the latest meshstat.Report as JSON, with refresh_ms
//
// The handler gathers on demand: a request to /api/graph takes a new sample
// when the last is older than Config.MinInterval and serves the cached
// report otherwise, so any number of open pages cost one gathering per
// interval, and none when no page is open. The page exposes what it shows
// for tests and scripts as window.__natsmesh = {services, edges, updated,
// error} and as data-* attributes on the SVG nodes and edges.
package dashboard
