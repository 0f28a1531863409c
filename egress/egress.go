package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Config is a Handler: whose calls it makes, under which mesh file, and
// how it reaches the hosts.
type Config struct {
	// Caller is the calling service. Required.
	Caller string
	// Policies is the live mesh file. Nil: the built-in policy (any host
	// may be called, none is listed).
	Policies *live.Source
	// FailClosed refuses every call with no-mesh-file while Policies
	// holds no file (agent.Config.Policies).
	FailClosed bool
	// Middleware wraps the calls, the first outermost; it must hold
	// Gate(Policies, FailClosed), which refuses the hosts the file does
	// not allow (internal/chain.Egress composes them). Default (nil): the
	// Gate alone.
	Middleware []pipeline.OutboundMiddleware
	// Dial opens the connections to the hosts (plain HTTP and tunnels).
	// Default: a net.Dialer's, 5 s to connect. Tests map names to
	// loopback servers with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout is the deadline of a call whose client set none
	// (Mesh-Timeout): for plain HTTP its whole answer, for a tunnel its
	// dial. Default pipeline.DefaultTimeout.
	Timeout time.Duration
	// MaxTimeout bounds the deadline a client sets. Zero: no bound.
	MaxTimeout time.Duration
	// Limits, read per call, bound a plain-HTTP call and its answer; nil
	// means wire's defaults.
	Limits pipeline.Limits
	// Logger receives the tunnels' failures at Debug. Default
	// slog.Default().
	Logger *slog.Logger
}

// Handler serves the calls that leave the mesh (see the package
// documentation). Make it with New.
type Handler struct {
	cfg   Config
	send  pipeline.Sender
	proxy *meshhttp.Proxy

	mu      sync.Mutex
	closed  bool
	tunnels map[net.Conn]struct{} // the hosts' ends of the open tunnels
}

var _ http.Handler = (*Handler)(nil)

// New returns the Handler of cfg.
func New(cfg Config) (*Handler, error) {
	if err := wire.ValidateName("service", cfg.Caller); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	if cfg.Timeout < 0 || cfg.MaxTimeout < 0 {
		return nil, fmt.Errorf("egress: negative timeout %v", min(cfg.Timeout, cfg.MaxTimeout))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = pipeline.DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	mws := cfg.Middleware
	if mws == nil {
		mws = []pipeline.OutboundMiddleware{Gate(cfg.Policies, cfg.FailClosed)}
	}
	h := &Handler{cfg: cfg, tunnels: map[net.Conn]struct{}{}}
	var s pipeline.Sender = &terminal{http: &meshhttp.Egress{Transport: meshhttp.NewEgressTransport(cfg.Dial), Limits: cfg.Limits}, dial: cfg.Dial}
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			s = mws[i](s)
		}
	}
	h.send = &deadline{next: s, timeout: cfg.Timeout, max: cfg.MaxTimeout}
	h.proxy = &meshhttp.Proxy{Sender: h.send, Caller: cfg.Caller, Resolve: h.resolve, Limits: cfg.Limits, ErrorLog: cfg.Logger}
	return h, nil
}

// ServeHTTP serves a request to a host outside the mesh: a CONNECT
// tunnel, or a plain-HTTP call.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		h.connect(w, r)
		return
	}
	h.proxy.ServeHTTP(w, r)
}

// resolve is a plain-HTTP call's destination: its host's entry.
func (h *Handler) resolve(r *http.Request) (pipeline.Call, error) {
	host, err := hostOf(meshhttp.TargetHost(r))
	if err != nil {
		return pipeline.Call{}, err
	}
	entry, _ := h.file().EgressEntry(host)
	return pipeline.Call{Egress: entry}, nil
}

func (h *Handler) file() *policies.File { return current(h.cfg.Policies) }

// current is src's mesh file, nil while it holds none or src is nil.
func current(src *live.Source) *policies.File {
	if src == nil {
		return nil
	}
	f, _ := src.Current()
	return f
}

// Gate is the middleware that refuses a call to a host the mesh file
// does not allow (egress-denied, naming the host and the setting that
// would allow it), and every call with no-mesh-file while failClosed and
// src holds no file. It reads the host from the call's Mesh-Host, and the
// file current when the call passes it.
func Gate(src *live.Source, failClosed bool) pipeline.OutboundMiddleware {
	return func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			f := current(src)
			if failClosed && f == nil {
				return nil, wire.Errorf(wire.KindNoMeshFile, "no mesh file yet: calls to hosts outside the mesh are refused until one is applied (natsmesh policy apply)")
			}
			host, err := hostOf(c.Header.Get(wire.HeaderHost))
			if err != nil {
				return nil, err
			}
			if _, allowed := f.EgressEntry(host); !allowed {
				return nil, Denied(host)
			}
			return next.Send(ctx, c)
		})
	}
}

// Denied is the answer to a call to host that the mesh file does not
// allow.
func Denied(host string) *wire.Error {
	return wire.Errorf(wire.KindEgressDenied, "%q is outside the mesh and the mesh file's egress.mode is %s: list it under egress.hosts, or set egress.mode: %s",
		host, policies.EgressRegistryOnly, policies.EgressAllowAny)
}

// hostOf is the name of the host that hostport names, as the mesh file
// lists hosts (lower case, no port).
func hostOf(hostport string) (string, error) {
	// Against an empty, complete list, every name is outside the mesh.
	d, err := wire.ReadHost(hostport, nil, nil, true)
	if err != nil {
		return "", err
	}
	return d.External, nil
}

// deadline gives a call the client's deadline (Mesh-Timeout, which the
// Proxy set on ctx) bounded by max, or timeout when it set none, until
// its answer ends: a streamed answer keeps it until its end.
type deadline struct {
	next         pipeline.Sender
	timeout, max time.Duration
}

func (d *deadline) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	t, ok := ctx.Deadline()
	var cancel context.CancelFunc
	switch {
	case !ok:
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
	case d.max > 0 && time.Until(t) > d.max:
		ctx, cancel = context.WithTimeout(ctx, d.max)
	default:
		return d.next.Send(ctx, c)
	}
	reply, err := d.next.Send(ctx, c)
	if err == nil && reply.Streamed() {
		reply.OnEnd(func(wire.Outcome) { cancel() })
	} else {
		cancel()
	}
	return reply, err
}

// terminal ends the egress pipeline: a plain-HTTP call goes to its host
// (meshhttp.Egress), a CONNECT dials it.
type terminal struct {
	http *meshhttp.Egress
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (t *terminal) Send(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	if c.Op != http.MethodConnect {
		return t.http.Send(ctx, c)
	}
	slot, _ := ctx.Value(slotKey{}).(*tunnelSlot)
	if slot == nil {
		return nil, wire.Errorf(wire.KindInternal, "egress: a CONNECT call without its tunnel")
	}
	host := c.Header.Get(wire.HeaderHost)
	conn, err := t.dial(ctx, "tcp", host)
	if err != nil {
		who := "the external host " + host
		if ctx.Err() != nil {
			return nil, &wire.Error{Kind: wire.KindTimeout, Message: who + " did not accept the connection in time", Err: err}
		}
		return nil, &wire.Error{Kind: wire.KindUpstreamRefused, Message: who + " refused the connection: " + err.Error(), Err: err}
	}
	if !slot.fill(conn) {
		conn.Close() // the call was given up meanwhile
		return nil, wire.Errorf(wire.KindTimeout, "the tunnel to %s was given up", host)
	}
	return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
}

// tunnelSlot takes the connection a CONNECT call's attempt dialed, once:
// a second (a retry that raced a late first) is refused, and so is one
// after the call ended.
type tunnelSlot struct {
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

type slotKey struct{}

func (s *tunnelSlot) fill(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil || s.closed {
		return false
	}
	s.conn = c
	return true
}

// take ends the slot and returns its connection, nil if none came.
func (s *tunnelSlot) take() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.conn
}

// connect serves a CONNECT: the call dials the host under the egress
// pipeline, then the client's connection is taken over, answered 200,
// and bytes are copied both ways until either side closes.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) { httpwire.WriteError(w, wire.FromError(err)) }
	if r.ProtoMajor != 1 {
		fail(wire.Errorf(wire.KindNotImplemented, "CONNECT over HTTP/%d is not carried: use HTTP/1.1 to the proxy", r.ProtoMajor))
		return
	}
	hostport := r.Host
	if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
		fail(wire.Errorf(wire.KindBadRequest, "CONNECT %.64q: want host:port", hostport))
		return
	}
	host, err := hostOf(hostport)
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel, err := meshhttp.CallerDeadline(r.Context(), r)
	defer cancel()
	if err != nil {
		fail(err)
		return
	}
	entry, _ := h.file().EgressEntry(host)
	slot := &tunnelSlot{}
	ctx = context.WithValue(ctx, slotKey{}, slot)
	c := &pipeline.Call{Egress: entry, Caller: h.cfg.Caller, Proto: wire.ProtoHTTP, Op: http.MethodConnect,
		Header: nats.Header{wire.HeaderHost: {hostport}}}
	_, err = h.send.Send(ctx, c)
	up := slot.take()
	if err != nil {
		if up != nil {
			up.Close()
		}
		fail(err)
		return
	}
	if !h.track(up) {
		up.Close()
		fail(wire.Errorf(wire.KindBrokerUnavailable, "the agent is shutting down"))
		return
	}
	defer h.untrack(up)
	defer up.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		fail(wire.Errorf(wire.KindNotImplemented, "CONNECT on a connection that cannot be taken over"))
		return
	}
	defer conn.Close()
	// The server's deadlines bound a request, not the tunnel it becomes.
	conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil || brw.Flush() != nil {
		return
	}
	h.pipe(conn, brw.Reader, up)
}

func (h *Handler) track(up net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.tunnels[up] = struct{}{}
	return true
}

func (h *Handler) untrack(up net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.tunnels, up)
}

// Close ends the open tunnels (each then closes its client's connection)
// and refuses new ones; plain-HTTP calls in flight are the listener's
// server's to finish. Safe to call more than once.
func (h *Handler) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.tunnels {
		c.Close()
	}
}

// pipe copies client (whose first bytes may sit in buffered) to up and up
// to client until either direction ends (one side closed, or failed),
// then closes both: a tunnel carries one stream, TLS's, which ends as a
// whole.
func (h *Handler) pipe(client net.Conn, buffered io.Reader, up net.Conn) {
	var once sync.Once
	end := func() {
		once.Do(func() {
			client.Close()
			up.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(up, buffered); err != nil && !errors.Is(err, net.ErrClosed) {
			h.cfg.Logger.Debug("egress: tunnel: client to host", "err", err)
		}
		end()
	}()
	if _, err := io.Copy(client, up); err != nil && !errors.Is(err, net.ErrClosed) {
		h.cfg.Logger.Debug("egress: tunnel: host to client", "err", err)
	}
	end()
	<-done
}
