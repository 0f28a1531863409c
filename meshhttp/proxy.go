package meshhttp

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/natsmesh/natsmesh/meshhttp/internal/httpstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Proxy is the outbound HTTP entry point: an http.Handler that sends each
// request it serves over the mesh, through Sender, and writes the answer,
// shaped like httputil.ReverseProxy: what differs between entry points is
// a hook, a field whose nil value is the default it documents. The agent's
// proxy listener and its bind ports and the edge gateway are Proxies that
// differ only in their hooks (Resolve, Rewrite).
//
// For each request, in this order, a Proxy:
//
//  1. after a chunked request closes the connection (RFC 9112 section
//     6.1: a proxy in front that framed it by Content-Length cannot
//     smuggle the next one); with Egress set and no Resolve, hands a
//     request whose host is outside the mesh (wire.ReadHost) to Egress,
//     which answers it, a CONNECT among them; refuses any other CONNECT
//     (bad-request: a client calls http://SERVICE/ and the mesh secures
//     the hop);
//  2. resolves the destination (Resolve) and the caller (CallerOf, else
//     Caller);
//  3. takes the client's deadline from its Mesh-Timeout header
//     ([CallerDeadline]); the outbound pipeline sets its own when the
//     client set none, and bounds the client's;
//  4. rewrites the outgoing request (Rewrite);
//  5. encodes it as a call ([NewCall], bounded by Limits), sends it
//     through Sender and decodes the reply ([Send]);
//  6. writes the service's answer, of which only a final status (from
//     200 to 599) reaches the client, or a 101 to a request that asked
//     for an upgrade, anything else being upstream-unavailable (a forged
//     101 would make it switch protocols, a 1xx leave it waiting), and an
//     empty answer to HEAD telling no Content-Length (the 0 would be the
//     length of the body that crossed, not of the resource); or the
//     failure, through ErrorHandler. A streamed answer is written as it
//     arrives, each piece flushed, its trailers at its end; one that
//     fails midway is cut (Result.Cut), never ended as if complete.
//
// Every request gets exactly one answer. A panic below the Proxy (a hook,
// a middleware) is logged and answered internal, unless the answer has
// begun; http.ErrAbortHandler passes on. [Transport] is the same steps for
// an in-process client.
//
// The agent and the edge serve their Proxies behind internal/httpguard
// (its framing guard and its handler), which refuses ambiguous framing
// and protocol upgrades before a request reaches the Proxy.
//
// Streams (issue 18): a request body of unknown length or over
// [WholeBodyMax] is sent as it comes, while the answer may already be
// written (full duplex); the answer streams as the service writes it
// (Server-Sent Events, downloads), as ReverseProxy's FlushInterval -1
// writes it. A protocol upgrade but h2c (WebSocket) is carried as one
// call (step 5 sends it with its Upgrade, step 6 takes over the client's
// connection on the service's 101 and copies both ways).
type Proxy struct {
	// Sender sends the calls: the outbound pipeline. Required.
	Sender pipeline.Sender
	// Caller is the calling service's name, the caller of every call,
	// when CallerOf is nil.
	Caller string
	// CallerOf, when set, names the caller of each request instead of
	// Caller: a node agent fronting several services tells them apart by
	// their client. An error that is no *wire.Error is answered forbidden.
	CallerOf func(*http.Request) (string, error)
	// Resolve returns the destination of a request: a Call with Service
	// and Subset, or Subject, set (its other fields are ignored; the
	// caller is CallerOf's or Caller). It must not modify the request: a
	// change to what is sent is Rewrite's. An error that is no *wire.Error
	// is answered no-route. Default (nil): the host the client addressed,
	// the absolute-form target a client sends to its HTTP proxy
	// (HTTP_PROXY=http://<agent>, then GET http://orders/v1/items), else
	// the Host header, read by [wire.ParseHost] with Domains ("orders",
	// "v2.orders" for a subset, "orders.mesh").
	Resolve func(*http.Request) (pipeline.Call, error)
	// Domains are the mesh domains the default Resolve accepts after a
	// service name (see [wire.ParseHost]).
	Domains []string
	// Egress, when set, serves the requests whose host the default
	// Resolve finds to be outside the mesh, by wire.ReadHost with
	// Domains and Services: calls that leave the mesh (package egress),
	// CONNECT tunnels among them. The agent's proxy listener sets it.
	// Default (nil): every host is read as a mesh service's name
	// (wire.ParseHost), and one that is none is answered no-route.
	Egress http.Handler
	// Services, with Egress, is the list of the mesh's services that
	// wire.ReadHost asks, per request: the mesh file that applies (nil
	// when there is none: a bare name is then a service, a dotted one is
	// not), and whether it is complete (every service of the mesh in it,
	// so a bare name it does not declare is none). Default (nil): no
	// list.
	Services func() (list wire.Services, complete bool)
	// Rewrite, when set, changes the request before it is encoded: its
	// ProxyRequest's Out and Limits. An error is answered as
	// [wire.FromError] reads it. Default (nil): the request is sent as
	// the client made it.
	Rewrite func(*ProxyRequest) error
	// Limits, read per request, bound the call (its body, its headers);
	// nil means the bounds of Sender's connection when Sender is a
	// *pipeline.Outbound, else wire's defaults.
	Limits pipeline.Limits
	// ErrorHandler answers a request that failed: err is a *wire.Error
	// (a failure of the mesh, or a request it refuses). Default (nil):
	// the mesh's error answer, httpwire.WriteError (the kind's status, a
	// Mesh-Error header naming the kind, a one-line body).
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// ErrorLog receives a panic (at Error) and a failure to write an
	// answer (at Debug). Default (nil): slog.Default().
	ErrorLog *slog.Logger
	// StreamWriteTimeout bounds each write of a streamed answer to the
	// client (a piece, flushed): a client that takes longer to accept one
	// is gone, and its call is cancelled. It replaces the server's
	// WriteTimeout, which runs from the request's head, for streamed
	// answers, which last as long as their service sends, and for any
	// answer to a streamed request body, which comes once the body has
	// been sent. Default (0): DefaultStreamWriteTimeout; negative: the
	// server's deadline stays.
	StreamWriteTimeout time.Duration
}

var _ http.Handler = (*Proxy)(nil)

// ProxyRequest is a request on its way through a [Proxy]'s Rewrite hook,
// as httputil.ProxyRequest is through ReverseProxy's. It and its Out are
// the hook's only while it runs: the Proxy reuses them for another request
// once the call is encoded, so a hook keeps neither.
type ProxyRequest struct {
	// In is the request as the client sent it. Do not modify it.
	In *http.Request
	// Out is the request to send: a shallow copy of In, whose fields are
	// its own to change, but whose Header is In's map until the hook
	// gives it one (Out.Header = In.Header.Clone()) to change.
	Out *http.Request
	// Limits bound the encoded call. A hook that adds headers on the
	// client's behalf checks the client's first
	// (httpwire.CheckHeaderLimits) and raises the header bounds by what
	// it adds, so that they never count against the client.
	Limits wire.Limits

	dest pipeline.Call
}

// Dest is the request's destination and caller, as resolved.
func (pr *ProxyRequest) Dest() pipeline.Call { return pr.dest }

// Result is how a [Proxy] answered one request.
type Result struct {
	// Dest is the request's destination and caller, as resolved; the zero
	// Call when the request failed before.
	Dest pipeline.Call
	// Status is the HTTP status answered: the service's, or the mesh
	// error's (its kind's, whatever ErrorHandler wrote).
	Status int
	// Err is the mesh error answered, a *wire.Error; nil when the
	// service's answer was written. For a streamed answer, the mesh
	// error that cut it midway.
	Err error
	// Cut reports that a streamed answer failed midway (Err says why),
	// its status and part of its body written: it must not reach the
	// client as complete, so the handler aborts it
	// (panic(http.ErrAbortHandler)) once it has recorded it.
	Cut bool
}

// ServeHTTP forwards r ([Proxy.Forward]); an answer cut midway is
// aborted (Result.Cut).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.Forward(w, r).Cut {
		panic(http.ErrAbortHandler)
	}
}

// Forward forwards r as ServeHTTP does and returns how it was answered,
// for a component that observes its requests (the edge gateway counts its
// outside clients so). When the Result is Cut, the caller aborts the
// answer once it has recorded it: panic(http.ErrAbortHandler), as
// ServeHTTP does.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request) (res Result) {
	answered := false
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p.log().Error("meshhttp: panic forwarding a request", "panic", v, "method", r.Method, "host", r.Host, "path", r.URL.Path)
			if !answered {
				res.Status, res.Err = p.fail(w, r, wire.Errorf(wire.KindInternal, "panic forwarding the request"))
			}
		}
	}()
	if len(r.TransferEncoding) > 0 {
		// httpguard.Handler does the same; this keeps it for a Proxy
		// served by another server.
		w.Header().Set("Connection", "close")
	}
	if p.Egress != nil && p.Resolve == nil {
		list, complete := p.services()
		if d, err := wire.ReadHost(TargetHost(r), p.Domains, list, complete); err == nil && d.External != "" {
			// Egress answers; a panic before it did is answered
			// internal here.
			p.Egress.ServeHTTP(w, r)
			return res
		}
	}
	rc := http.NewResponseController(w)
	x := &exchange{
		// A read of the client's body in progress when the call ends
		// waits for the client: end it.
		unblock: func() { rc.SetReadDeadline(aLongTimeAgo) },
		upgrade: httpstream.NewTunnel,
	}
	resp, err := p.roundTrip(r, &res.Dest, x)
	answered = true
	if x.streamed {
		// The body may still be being sent while the answer is written
		// (full duplex: a service that answers as it reads); and the
		// server's WriteTimeout ran from the request's head: the answer
		// gets its own bound.
		rc.EnableFullDuplex()
		(&flushWriter{rc: rc, timeout: p.streamWriteTimeout()}).deadline()
	}
	if err != nil {
		res.Status, res.Err = p.fail(w, r, err)
		return res
	}
	res.Status = resp.StatusCode
	if x.tunnel != nil {
		if resp.StatusCode == http.StatusSwitchingProtocols {
			res.Err = p.switchProtocols(w, resp, x.tunnel)
			if res.Err != nil && !x.tunnel.Started() {
				res.Status, res.Err = p.fail(w, r, res.Err)
			}
			return res
		}
		x.tunnel.Refuse()
	}
	if body, ok := resp.Body.(*httpstream.Body); ok {
		res.Err, res.Cut = p.writeStream(w, rc, resp, body)
		return res
	}
	if err := httpwire.WriteResponse(w, resp); err != nil {
		p.log().Debug("meshhttp: writing the answer", "err", err)
	}
	return res
}

// aLongTimeAgo is a deadline passed: set on a connection, it ends a read
// in progress.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip makes r's call (steps 1 to 5 of [Proxy]), its destination
// in dest once resolved, with what x lends it.
func (p *Proxy) roundTrip(r *http.Request, dest *pipeline.Call, x *exchange) (*http.Response, error) {
	if r.Method == http.MethodConnect {
		return nil, errConnect
	}
	if p.Sender == nil {
		return nil, wire.Errorf(wire.KindInternal, "meshhttp: Proxy.Sender is nil")
	}
	d, err := p.resolve(r)
	if err != nil {
		return nil, err
	}
	if d.Caller, err = p.caller(r); err != nil {
		return nil, err
	}
	*dest = d
	return roundTrip(p.Sender, r, d, limitsNow(p.Limits, p.Sender), p.Rewrite, x)
}

// writeStream writes a streamed answer as it arrives: the head at once,
// then each piece, flushed (Server-Sent Events reach the client as the
// service sends them, as with ReverseProxy's FlushInterval -1), each
// write bounded by StreamWriteTimeout, then the trailers. A stream that
// fails midway cuts the answer (the mesh error, and cut); a client that
// goes away ends the call (the stream is closed: the service's handler
// is cancelled).
func (p *Proxy) writeStream(w http.ResponseWriter, rc *http.ResponseController, resp *http.Response, body *httpstream.Body) (err error, cut bool) {
	defer body.Close()
	dst := w.Header()
	for k, vs := range resp.Header {
		dst[k] = vs
	}
	declared := make(map[string]bool, len(resp.Trailer))
	for k := range resp.Trailer {
		dst.Add("Trailer", k)
		declared[k] = true
	}
	if len(resp.Trailer) > 0 {
		// Trailers need a chunked HTTP/1.1 answer.
		dst.Del("Content-Length")
	}
	fw := &flushWriter{w: w, rc: rc, timeout: p.streamWriteTimeout()}
	fw.deadline()
	w.WriteHeader(resp.StatusCode)
	fw.flush()
	if _, err := body.WriteTo(fw); err != nil {
		if fw.err != nil {
			p.log().Debug("meshhttp: writing the answer", "err", fw.err)
			return nil, false
		}
		return wire.FromError(err), true
	}
	for k, vs := range resp.Trailer {
		if declared[k] {
			dst[k] = vs
		} else {
			dst[http.TrailerPrefix+k] = vs
		}
	}
	return nil, false
}

// flushWriter writes a streamed answer to its client: each write
// bounded by timeout (the server's WriteTimeout bounds an answer that
// lasts, not each piece of it), then flushed. err is the first failure
// of the client's side.
type flushWriter struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	timeout    time.Duration
	err        error
	noDeadline bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.deadline()
	n, err := f.w.Write(p)
	if err == nil {
		err = f.flush()
	}
	if err != nil && f.err == nil {
		f.err = err
	}
	return n, err
}

func (f *flushWriter) deadline() {
	if f.timeout <= 0 || f.noDeadline {
		return
	}
	if err := f.rc.SetWriteDeadline(time.Now().Add(f.timeout)); err != nil {
		f.noDeadline = true // not supported by this ResponseWriter
	}
}

func (f *flushWriter) flush() error {
	err := f.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// DefaultStreamWriteTimeout is the default of Proxy.StreamWriteTimeout.
const DefaultStreamWriteTimeout = time.Minute

func (p *Proxy) streamWriteTimeout() time.Duration {
	if p.StreamWriteTimeout == 0 {
		return DefaultStreamWriteTimeout
	}
	return p.StreamWriteTimeout
}

// resolve is r's destination by the Resolve hook, or by the host rule
// ([resolveHost]) when there is none.
func (p *Proxy) resolve(r *http.Request) (pipeline.Call, error) {
	if p.Resolve == nil {
		if p.Egress != nil {
			list, complete := p.services()
			return readHost(r, p.Domains, list, complete)
		}
		return resolveHost(r, p.Domains)
	}
	d, err := p.Resolve(r)
	if err != nil {
		return pipeline.Call{}, withKind(err, wire.KindNoRoute)
	}
	return pipeline.Call{Service: d.Service, Subset: d.Subset, Subject: d.Subject, Egress: d.Egress}, nil
}

func (p *Proxy) services() (wire.Services, bool) {
	if p.Services == nil {
		return nil, false
	}
	return p.Services()
}

func (p *Proxy) caller(r *http.Request) (string, error) {
	if p.CallerOf == nil {
		return p.Caller, nil
	}
	c, err := p.CallerOf(r)
	if err != nil {
		return "", withKind(err, wire.KindForbidden)
	}
	return c, nil
}

// fail answers r with err, as a mesh error, and returns what it answered.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) (int, error) {
	e := wire.FromError(err)
	if p.ErrorHandler != nil {
		p.ErrorHandler(w, r, e)
	} else {
		httpwire.WriteError(w, e)
	}
	return e.HTTPStatus(), e
}

func (p *Proxy) log() *slog.Logger {
	if p.ErrorLog != nil {
		return p.ErrorLog
	}
	return slog.Default()
}

// errConnect is the answer to CONNECT to a mesh service.
var errConnect = wire.Errorf(wire.KindBadRequest, "CONNECT tunnels go to hosts outside the mesh only: call http://<service>/ and the mesh secures the hop")

// TargetHost is the host a request's client addressed: the URL's (an
// absolute-form target, a CONNECT's authority, or a client-side
// request's), else Host.
func TargetHost(r *http.Request) string {
	if r.URL != nil && r.URL.Host != "" {
		return r.URL.Host
	}
	return r.Host
}

// resolveHost is the default destination of a request: the host its
// client addressed, read by wire.ParseHost.
func resolveHost(r *http.Request, domains []string) (pipeline.Call, error) {
	service, subset, err := wire.ParseHost(TargetHost(r), domains)
	if err != nil {
		return pipeline.Call{}, err
	}
	return pipeline.Call{Service: service, Subset: subset}, nil
}

// readHost is the default destination of a request to a Proxy with
// Egress: the host its client addressed, read by wire.ReadHost, which
// must name a mesh service (Forward handed the others to Egress; a mesh
// file that changed since may make one external: no-route).
func readHost(r *http.Request, domains []string, services wire.Services, complete bool) (pipeline.Call, error) {
	host := TargetHost(r)
	d, err := wire.ReadHost(host, domains, services, complete)
	if err != nil {
		return pipeline.Call{}, err
	}
	if d.External != "" {
		return pipeline.Call{}, wire.Errorf(wire.KindNoRoute, "%.64q is no mesh service", host)
	}
	return pipeline.Call{Service: d.Service, Subset: d.Subset}, nil
}

// withKind is err as a mesh error: its own when it is one, else one of
// kind.
func withKind(err error, kind wire.Kind) *wire.Error {
	var e *wire.Error
	if errors.As(err, &e) {
		return e
	}
	return &wire.Error{Kind: kind, Message: err.Error(), Err: err}
}
