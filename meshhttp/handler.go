package meshhttp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/meshhttp/internal/httpstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Handler is the inbound kind for an in-process http.Handler: each call
// is decoded into a server-side *http.Request (with Mesh-Caller set from
// the subject) and served by Handler with no local hop; a streamed call's
// body arrives as the caller sends it.
//
// The handler runs on a goroutine of its own. Its answer is whole when it
// returns having written at most [WholeBodyMax] without flushing;
// otherwise (a Flush, more than that) the answer is streamed from then
// on: the head (status and headers as they were) at once, each write
// handed to the reply's stream as it is made (a write waits until the
// stream has taken it, so a handler cannot outrun its reader), the
// trailers when it returns.
//
// A protocol upgrade (WebSocket) is served to a handler that takes over
// its connection (http.Hijacker): an in-memory one, whose reads are the
// call's body stream and whose writes, after the 101, the reply's.
//
// A handler that panics is an internal mesh error, one that panics with
// http.ErrAbortHandler an upstream one (a streamed answer fails so at
// that point), and one whose whole answer's headers exceed the limits an
// upstream error naming the response, not the caller's request.
type Handler struct {
	// Handler serves the calls. Required.
	Handler http.Handler
	// Limits, read per call, bound the answer (the connection's
	// max_payload may change on reconnect); nil means the defaults.
	Limits pipeline.Limits
}

var _ pipeline.Handler = (*Handler)(nil)

// ServeCall implements [pipeline.Handler].
func (k *Handler) ServeCall(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	lim := k.Limits.Now()
	// The dispatch parsed the subject and set the deadline already.
	r, err := decodeCall(ctx, c)
	if err != nil {
		return nil, err
	}
	if r.Host == "" {
		r.Host = c.Service
	}
	setCallerHeader(r.Header, c.Caller)
	rec := newRecorder(wholeLimit(lim))
	if httpwire.Upgrade(r.Header) != "" && c.Body.Streamed() {
		// The call's body is the connection's once switched, which a
		// handler that takes it over (Hijack) reads: the request has none.
		rec.tunnel = c.Body.Stream
		r.Body, r.ContentLength = http.NoBody, 0
		r.Header.Del("Content-Length")
	}
	go rec.serve(k.Handler, r)
	select {
	case <-rec.done:
	case <-rec.committed:
	case <-rec.hijacked:
	}
	select {
	case <-rec.hijacked:
		return rec.switched(ctx, lim)
	case <-rec.committed:
		return rec.streamReply(lim)
	default:
	}
	if rec.panicked != "" {
		return nil, &wire.Error{Kind: wire.KindInternal, Message: "handler panic: " + rec.panicked}
	}
	if rec.aborted {
		return nil, &wire.Error{Kind: wire.KindUpstream, Message: "handler aborted the response"}
	}
	code := rec.status()
	trailer := rec.trailer()
	m, err := httpwire.ResponseMsg(code, rec.snapshot, rec.body.Bytes(), trailer, lim)
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	// The reply lives in the recorder, whose body it is already
	// (ReplyFromMsg is inlined, so its copy allocates nothing).
	rec.reply = *pipeline.ReplyFromMsg(wire.ProtoHTTP, m)
	return &rec.reply, nil
}

// setCallerHeader sets the Mesh-Caller header, removing any spelling of it
// the caller sent: the identity comes from the subject only.
func setCallerHeader(h http.Header, caller string) {
	for k := range h {
		if strings.EqualFold(k, wire.HeaderCaller) {
			delete(h, k)
		}
	}
	h[wire.HeaderCaller] = []string{caller}
}

var (
	_ http.ResponseWriter = (*recorder)(nil)
	_ http.Flusher        = (*recorder)(nil)
	_ http.Hijacker       = (*recorder)(nil)
)

// recorder is the http.ResponseWriter of a handler's answer: it collects
// a whole one, and commits to a stream (committed) at the handler's
// first Flush or past limit bytes, from then on handing each write to the
// reply's stream through a pipe. The handler's goroutine writes it; the
// call's reads it once done or committed is closed, and, once committed,
// reads the pipe.
type recorder struct {
	header   http.Header
	snapshot http.Header // header as of WriteHeader
	code     int
	body     bytes.Buffer
	panicked string
	aborted  bool
	// limit bounds the body collected whole: past it, the answer is
	// streamed.
	limit int64

	done      chan struct{} // closed when the handler has returned
	committed chan struct{} // closed when the answer is streamed
	pr        *io.PipeReader
	pw        *io.PipeWriter

	// tunnel is the body of an upgrade call, which a handler that takes
	// over its connection (Hijack) reads from conn; switching is set when
	// it wrote the 101 with WriteHeader (as a server writes it for it),
	// and hijacked closed when it took the connection.
	tunnel    pipeline.Stream
	switching bool
	hijacked  chan struct{}
	conn      net.Conn

	reply pipeline.Reply
}

func newRecorder(limit int64) *recorder {
	return &recorder{header: make(http.Header), limit: limit, done: make(chan struct{}), committed: make(chan struct{}), hijacked: make(chan struct{})}
}

// serve runs h on r, recording a panic, then ends the answer: a streamed
// one's pipe with the handler's failure, if any.
func (rec *recorder) serve(h http.Handler, r *http.Request) {
	defer close(rec.done)
	defer func() {
		p := recover()
		switch {
		case p == http.ErrAbortHandler:
			rec.aborted = true
		case p != nil:
			rec.panicked = fmt.Sprint(p)
		}
		if rec.pw == nil {
			return
		}
		switch {
		case rec.aborted:
			rec.pw.CloseWithError(&wire.Error{Kind: wire.KindUpstream, Message: "handler aborted the response"})
		case rec.panicked != "":
			rec.pw.CloseWithError(&wire.Error{Kind: wire.KindInternal, Message: "handler panic: " + rec.panicked})
		default:
			rec.pw.Close()
		}
	}()
	h.ServeHTTP(rec, r)
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code != 0 || code < 100 || code > 999 {
		return
	}
	if code == http.StatusSwitchingProtocols && r.tunnel != nil && !r.switching {
		// An upgrade's answer, before the handler takes the connection.
		r.switching = true
		r.snapshot = r.header.Clone()
		return
	}
	if code < 200 {
		// Informational answers (100 Continue, 103 Early Hints) are not the
		// final answer and do not cross the mesh.
		return
	}
	r.code = code
	r.snapshot = r.header.Clone()
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.pw != nil {
		return r.pw.Write(p)
	}
	if r.body.Len() == 0 && r.snapshot.Get("Content-Type") == "" && len(p) > 0 {
		r.snapshot.Set("Content-Type", http.DetectContentType(p))
	}
	if int64(r.body.Len())+int64(len(p)) > r.limit {
		if err := r.commit(); err != nil {
			return 0, err
		}
		return r.pw.Write(p)
	}
	return r.body.Write(p)
}

// Flush commits the answer to a stream: what was written so far, and
// each write from now on, reaches the caller as it is made.
func (r *recorder) Flush() {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.pw == nil {
		r.commit()
	}
}

// Hijack gives a handler that takes over its connection (a WebSocket
// upgrade) one end of an in-memory one, for an upgrade call only (else
// it fails): the call's body is what the handler reads there; its answer
// is the 101 it wrote with WriteHeader, or the answer it writes there,
// then the bytes it writes there ([recorder.switched]).
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if r.tunnel == nil || r.pw != nil || r.conn != nil || (r.code != 0 && !r.switching) {
		return nil, nil, errors.New("meshhttp: only an upgrade's connection can be taken over, before its answer")
	}
	handler, ours := net.Pipe()
	r.conn = ours
	close(r.hijacked)
	return handler, bufio.NewReadWriter(bufio.NewReader(handler), bufio.NewWriter(handler)), nil
}

// switched is the reply of a handler that took over its connection: the
// 101 it wrote with WriteHeader, or the answer it writes on the
// connection (read under ctx), whose body, for a 101, is the rest of what
// it writes there, while the call's body is written to it. The end of
// the reply's stream closes the connection.
func (r *recorder) switched(ctx context.Context, lim wire.Limits) (*pipeline.Reply, error) {
	br := bufio.NewReader(r.conn)
	status, header := http.StatusSwitchingProtocols, r.snapshot
	var body io.Reader = br
	if !r.switching {
		stop := context.AfterFunc(ctx, func() { r.conn.Close() })
		resp, err := http.ReadResponse(br, nil)
		stop()
		if err != nil {
			r.conn.Close()
			return nil, &wire.Error{Kind: wire.KindUpstream, Message: "reading the answer of a handler that took over its connection: " + err.Error(), Err: err}
		}
		status, header = resp.StatusCode, resp.Header
		if status != http.StatusSwitchingProtocols {
			body = resp.Body
		}
	}
	head, err := httpwire.ResponseHead(status, header, -1, nil, lim)
	if err != nil {
		r.conn.Close()
		return nil, wire.ResponseError(err)
	}
	go httpstream.Pump(ctx, r.tunnel, r.conn)
	return pipeline.NewStreamReply(wire.ProtoHTTP, head.Header, &httpstream.Source{R: readCloser{body, r.conn}, Fail: handlerFailure}), nil
}

// readCloser is a reader closed by another's Close.
type readCloser struct {
	io.Reader
	io.Closer
}

// commit makes the answer a stream: the call's goroutine returns its
// head, and reads the pipe, to which the body so far is written first.
func (r *recorder) commit() error {
	r.pr, r.pw = io.Pipe()
	close(r.committed)
	if r.body.Len() == 0 {
		return nil
	}
	_, err := r.pw.Write(r.body.Bytes())
	r.body = bytes.Buffer{}
	return err
}

// streamReply is the reply of a committed answer: its head as of
// WriteHeader (its declared trailers as well), its body the pipe, its
// trailers read when the handler has returned.
func (r *recorder) streamReply(lim wire.Limits) (*pipeline.Reply, error) {
	var declared http.Header
	for _, names := range r.snapshot.Values("Trailer") {
		for k := range strings.SplitSeq(names, ",") {
			if k = strings.TrimSpace(k); k != "" {
				if declared == nil {
					declared = make(http.Header)
				}
				declared[http.CanonicalHeaderKey(k)] = nil
			}
		}
	}
	length := int64(-1)
	if cl := r.snapshot.Get("Content-Length"); cl != "" && len(declared) == 0 {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			length = n
		}
	}
	head, err := httpwire.ResponseHead(r.code, r.snapshot, length, declared, lim)
	if err != nil {
		r.pr.CloseWithError(err)
		return nil, wire.ResponseError(err)
	}
	return pipeline.NewStreamReply(wire.ProtoHTTP, head.Header, &httpstream.Source{R: r.pr, Fail: handlerFailure,
		// The pipe ends once the handler has returned: its trailers are
		// set.
		TrailerOf: func() nats.Header { return httpwire.TrailerHeader(r.trailer()) }}), nil
}

// handlerFailure is how a streamed answer of an in-process handler
// fails: its own mesh error (a panic, an abort), else upstream.
func handlerFailure(err error) error {
	var me *wire.Error
	if errors.As(err, &me) {
		return me
	}
	return answerFailure(err)
}

func (r *recorder) status() int {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.code
}

// trailer collects the trailers a handler declared (Trailer header) or set
// after writing with the http.TrailerPrefix convention.
func (r *recorder) trailer() http.Header {
	var t http.Header
	for _, declared := range r.snapshot.Values("Trailer") {
		for _, k := range strings.Split(declared, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if vs, ok := r.header[k]; ok {
				if t == nil {
					t = make(http.Header)
				}
				t[k] = vs
			}
		}
	}
	for k, vs := range r.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if t == nil {
				t = make(http.Header)
			}
			t[http.CanonicalHeaderKey(k[len(http.TrailerPrefix):])] = vs
		}
	}
	r.header = r.snapshot
	return t
}
