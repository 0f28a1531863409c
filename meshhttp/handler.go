package meshhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Handler is the inbound kind for an in-process http.Handler: each call
// is decoded into a server-side *http.Request (with Mesh-Caller set from
// the subject) and served by Handler with no local hop.
//
// A handler that panics is an internal mesh error, one that panics with
// http.ErrAbortHandler an upstream one, and one whose answer exceeds
// max_payload an upstream error naming the response, not the caller's
// request.
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
	r, err := httpwire.DecodeCall(ctx, c.Header, c.Body.Bytes, c.Op)
	if err != nil {
		return nil, err
	}
	if r.Host == "" {
		r.Host = c.Service
	}
	setCallerHeader(r.Header, c.Caller)
	rec := newRecorder(lim.PayloadLimit())
	func() {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					rec.aborted = true
					return
				}
				rec.panicked = fmt.Sprint(p)
			}
		}()
		k.Handler.ServeHTTP(rec, r)
	}()
	if rec.panicked != "" {
		return nil, &wire.Error{Kind: wire.KindInternal, Message: "handler panic: " + rec.panicked}
	}
	if rec.aborted {
		return nil, &wire.Error{Kind: wire.KindUpstream, Message: "handler aborted the response"}
	}
	if rec.tooLarge {
		return nil, &wire.Error{Kind: wire.KindUpstream, Message: fmt.Sprintf("the service's response body exceeds max_payload (%d bytes)", rec.limit)}
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
)

// recorder is the http.ResponseWriter that collects a handler's answer.
type recorder struct {
	header   http.Header
	snapshot http.Header // header as of WriteHeader
	code     int
	body     bytes.Buffer
	panicked string
	aborted  bool
	// limit bounds the body, so a handler that writes without end fails
	// with too-large instead of exhausting memory.
	limit    int64
	tooLarge bool

	reply pipeline.Reply
}

func newRecorder(limit int64) *recorder { return &recorder{header: make(http.Header), limit: limit} }

// errBodyTooLarge is what a handler's Write returns past the limit.
var errBodyTooLarge = errors.New("meshhttp: response body exceeds max_payload")

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code != 0 || code < 100 || code > 999 {
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
	if r.body.Len() == 0 && r.snapshot.Get("Content-Type") == "" && len(p) > 0 {
		r.snapshot.Set("Content-Type", http.DetectContentType(p))
	}
	if r.tooLarge || int64(r.body.Len())+int64(len(p)) > r.limit {
		r.tooLarge = true
		return 0, errBodyTooLarge
	}
	return r.body.Write(p)
}

func (r *recorder) Flush() {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
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
