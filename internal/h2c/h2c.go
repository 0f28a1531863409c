package h2c

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// Server switches the HTTP/1.1 connections of one http.Server to HTTP/2 on
// request ([Server.Upgrade]) and keeps them until they end, for its
// shutdown. Make one with [Enable].
type Server struct {
	hs *http.Server
	h2 *http2.Server
	// goAway is a server of the package's own that h2 was configured on:
	// x/net starts the graceful shutdown of its connections (GOAWAY, then
	// close once their streams end) only from the Shutdown of such a
	// server. Configuring hs itself would also make it offer h2 over TLS
	// (ALPN), which the mesh's guarded TLS listeners cannot serve.
	goAway *http.Server

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
	serving sync.WaitGroup // the upgraded connections being served
}

// The HTTP/2 bounds of every listener of the mesh that speaks HTTP/2
// (net/http's and x/net's servers here, grpc-go's on the gRPC proxy): an
// HPACK reference is one byte that decodes to a whole field again, so
// what a connection may make the listener decode and hold is bounded by
// the header list of a request (MaxHeaderBytes, or
// wire.Limits.HeaderListSize, refused while it is decoded, before it is
// held) times the streams open at once on it, and its HPACK table.
const (
	// MaxConcurrentStreams is the streams one connection may have open
	// at once (SETTINGS_MAX_CONCURRENT_STREAMS): the RFC 9113's
	// recommended least, and Go's client opens another connection, and
	// grpc-go's waits, past it. net/http's default is 250, grpc-go's
	// unbounded.
	MaxConcurrentStreams = 100
	// HeaderTableSize is the HPACK dynamic table a connection's decoder
	// keeps (SETTINGS_HEADER_TABLE_SIZE): the protocol's default, which
	// every library here has too, written down so that no change of
	// theirs raises it unseen.
	HeaderTableSize = 4096
)

// Enable makes hs serve HTTP/2 without TLS beside what it serves: it adds
// UnencryptedHTTP2 to hs.Protocols (nil means net/http's default, HTTP/1.1
// and HTTP/2 over TLS), so that net/http serves clients with prior
// knowledge itself, sets the HTTP/2 bounds above in hs.HTTP2 where it
// has none (set hs.MaxHeaderBytes: it bounds a request's header list
// over HTTP/2 too), and returns the Server whose Upgrade switches hs's
// HTTP/1.1 connections. Call it once hs's timeouts are set; hs.Handler may
// be set later. hs.Shutdown sends GOAWAY to the upgraded connections too,
// but waits only for its own (http.Server forgets a hijacked connection):
// call [Server.Shutdown] after it.
func Enable(hs *http.Server) *Server {
	if hs.Protocols == nil {
		hs.Protocols = new(http.Protocols)
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetHTTP2(true)
	}
	hs.Protocols.SetUnencryptedHTTP2(true)
	// The bounds, for net/http's server and the x/net one an upgraded
	// connection is served by (its BaseConfig is hs); the header list is
	// hs.MaxHeaderBytes, which both read.
	if hs.HTTP2 == nil {
		hs.HTTP2 = new(http.HTTP2Config)
	}
	if hs.HTTP2.MaxConcurrentStreams == 0 {
		hs.HTTP2.MaxConcurrentStreams = MaxConcurrentStreams
	}
	if hs.HTTP2.MaxDecoderHeaderTableSize == 0 {
		hs.HTTP2.MaxDecoderHeaderTableSize = HeaderTableSize
	}
	// As net/http does for the connections it serves over HTTP/2.
	idle := hs.IdleTimeout
	if idle == 0 {
		idle = hs.ReadTimeout
	}
	s := &Server{hs: hs, h2: &http2.Server{IdleTimeout: idle}, goAway: new(http.Server), conns: map[net.Conn]struct{}{}}
	// It fails only on a TLSConfig's cipher suites; goAway has none.
	_ = http2.ConfigureServer(s.goAway, s.h2)
	hs.RegisterOnShutdown(s.startShutdown)
	return s
}

// IsUpgrade reports whether r asks to switch to HTTP/2 without TLS: its
// Upgrade header lists h2c.
func IsUpgrade(r *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c")
}

// switching is the answer that switches a connection to HTTP/2.
const switching = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"

// Upgrade switches r's connection to HTTP/2 as r asks (RFC 7540 section
// 3.2): it answers 101 Switching Protocols and serves the connection over
// HTTP/2 with the server's Handler until it ends, r first, as stream 1,
// without its Upgrade headers. It returns once the connection has ended.
//
// It returns false, having done nothing, for a request it does not
// upgrade: one that asks for no upgrade to h2c or asks without the
// "Connection: Upgrade, HTTP2-Settings" and the one valid HTTP2-Settings
// header RFC 7540 requires; one over TLS or HTTP/1.0, which RFC 9110
// section 7.8 says to ignore; one with a body, which would have to be read
// whole before the switch (x/net's h2c package read it into memory without
// a bound); and every request once Shutdown has begun. The caller serves
// it over HTTP/1.1, as RFC 9110 section 7.8 allows: the client gets its
// answer either way, and the mesh never carries the Upgrade header on
// (hop-by-hop).
//
// Call it from the server's Handler, with the request's own
// ResponseWriter.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request) bool {
	settings, ok := upgradeSettings(r)
	if !ok {
		return false
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false // nothing written yet: HTTP/1.1 it is
	}
	defer c.Close()
	// net/http set the request's deadlines; HTTP/2 keeps its own.
	c.SetDeadline(time.Time{})
	if _, err := rw.WriteString(switching); err != nil {
		return true
	}
	if err := rw.Flush(); err != nil {
		return true
	}
	var conn net.Conn = c
	if rw.Reader.Buffered() > 0 {
		conn = &bufConn{Conn: c, r: rw.Reader}
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()

	h := s.hs.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	var first sync.Once
	s.h2.ServeConn(conn, &http2.ServeConnOpts{
		Context:    r.Context(),
		BaseConfig: s.hs,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// x/net registers the connection for its graceful shutdown
			// before it runs any handler on it: a shutdown that began
			// before then missed it.
			first.Do(s.lateGoAway)
			h.ServeHTTP(w, r)
		}),
		UpgradeRequest: upgraded(r),
		Settings:       settings,
	})
	return true
}

// upgradeSettings returns the HTTP/2 settings r's upgrade carries, and
// whether r is a request [Server.Upgrade] switches.
func upgradeSettings(r *http.Request) ([]byte, bool) {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.TLS != nil || !IsUpgrade(r) ||
		r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return nil, false
	}
	conn := r.Header["Connection"]
	if !httpguts.HeaderValuesContainsToken(conn, "Upgrade") || !httpguts.HeaderValuesContainsToken(conn, "HTTP2-Settings") {
		return nil, false
	}
	vs := r.Header["Http2-Settings"]
	if len(vs) != 1 {
		return nil, false
	}
	// base64url without padding (RFC 7540 section 3.2.1); padding is
	// tolerated.
	settings, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vs[0], "="))
	if err != nil || len(settings)%6 != 0 {
		return nil, false
	}
	return settings, true
}

// upgraded is r as the request of stream 1: over HTTP/2, without a body,
// and without the headers that named the connection's options, which
// HTTP/2 has none of (RFC 9113 section 8.2.2).
func upgraded(r *http.Request) *http.Request {
	u := r.Clone(r.Context())
	for _, v := range u.Header["Connection"] {
		for _, name := range strings.Split(v, ",") {
			u.Header.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range []string{"Connection", "Upgrade", "Http2-Settings", "Keep-Alive", "Proxy-Connection"} {
		u.Header.Del(name)
	}
	u.Proto, u.ProtoMajor, u.ProtoMinor = "HTTP/2.0", 2, 0
	u.Body, u.ContentLength, u.Close = http.NoBody, 0, false
	return u
}

// startShutdown refuses later upgrades and sends GOAWAY to the upgraded
// connections. The server's Shutdown calls it.
func (s *Server) startShutdown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.sendGoAway()
}

// lateGoAway sends GOAWAY if a shutdown has begun: x/net has just
// registered a connection that the shutdown's own GOAWAY may have missed.
func (s *Server) lateGoAway() {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		s.sendGoAway()
	}
}

// sendGoAway starts x/net's graceful shutdown of every connection h2
// serves (once per connection, however often it is called). goAway has
// neither listeners nor connections, so its Shutdown returns at once.
func (s *Server) sendGoAway() { s.goAway.Shutdown(context.Background()) }

// Shutdown shuts the upgraded connections down gracefully: it refuses
// later upgrades, sends GOAWAY (the server's Shutdown has done so
// already), so that clients start no new streams on them, and waits until
// each has ended, once its streams in flight have. When ctx ends first, it
// closes the rest and returns ctx's error. It is safe to call more than
// once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.startShutdown()
	done := make(chan struct{})
	go func() {
		s.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close refuses later upgrades and closes the upgraded connections at
// once, as http.Server.Close does its own.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for c := range s.conns {
		c.Close()
	}
	return nil
}

// bufConn is a connection whose first bytes were read ahead into r (the
// client may send the HTTP/2 preface right behind its request).
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}
