package httpwire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/net/http/httpguts"

	"github.com/natsmesh/natsmesh/wire"
)

// EncodeRequest turns an HTTP request into the headers and payload of a
// NATS request message: the request line in Mesh-* headers, the end-to-end
// headers (hop-by-hop ones removed, reserved names escaped), and the body as
// the payload. The message has no subject and no Mesh-Timeout: the outbound
// pipeline sets both on each attempt. The body is read (and closed) here, bounded by
// lim, so an oversized request fails before anything is published.
//
// It fails with a *wire.Error: KindBadRequest for ambiguous framing (both
// Content-Length and Transfer-Encoding, or conflicting lengths) or an
// ambiguous path ([AmbiguousPath]),
// KindHeadersTooLarge past lim's header bounds, and KindTooLarge past
// max_payload.
func EncodeRequest(r *http.Request, lim wire.Limits) (*nats.Msg, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	if err := checkFraming(r.Header, r.TransferEncoding); err != nil {
		return nil, err
	}
	if r.ContentLength > lim.PayloadLimit() {
		return nil, tooLarge(fmt.Sprintf("body of %d bytes", r.ContentLength), lim)
	}
	m, n, size, err := encodeHead(r, 0)
	if err != nil {
		return nil, err
	}
	if r.ContentLength > 0 { // at most max_payload: checked above
		m.Header["Content-Length"] = []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	if r.Body != nil && r.Body != http.NoBody {
		body, err := readLimited(r.Body, r.ContentLength, lim.PayloadLimit())
		if err != nil {
			return nil, err
		}
		m.Data = body
		if r.ContentLength < 0 {
			// A chunked body: the receiver gets a plain sized one.
			m.Header["Content-Length"] = []string{strconv.Itoa(len(body))}
		}
	}
	tn, tsize := copyHeaders(m.Header, r.Trailer, wire.HeaderTrailerPrefix, "")
	if err := lim.Check(m, n+tn, size+tsize); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeHead is the message of r without its body and trailers: the
// request line and the end-to-end headers, with room for extra more
// header names; n and size count the headers as lim.Check does.
func encodeHead(r *http.Request, extra int) (m *nats.Msg, n, size int, err error) {
	// At most 8: up to 8 entries, a map is one group; a larger hint
	// allocates a whole table even when the headers would fit in one.
	m = &nats.Msg{Header: make(nats.Header, min(len(r.Header)+5+extra, 8))}
	n, size = copyHeaders(m.Header, r.Header, "", wire.HeaderTimeout)
	// The Go server moves trailers declared up front to r.Trailer; they are
	// only known after the body is read.
	m.Header[wire.HeaderMethod] = []string{r.Method}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	if err := checkPath(path); err != nil {
		return nil, 0, 0, err
	}
	m.Header[wire.HeaderPath] = []string{path}
	if r.URL.RawQuery != "" {
		m.Header[wire.HeaderQuery] = []string{r.URL.RawQuery}
	}
	host := r.Host
	if host == "" && r.URL != nil {
		// A client-side request (an http.RoundTripper's) may leave Host
		// empty: the client then sends the URL's host.
		host = r.URL.Host
	}
	if err := checkRequest(r.Method, r.URL.RawQuery, host); err != nil {
		return nil, 0, 0, err
	}
	if host != "" {
		m.Header[wire.HeaderHost] = []string{host}
	}
	return m, n, size, nil
}

// tooLarge is the error of a body, as what names it, that must cross
// whole, in one message, and exceeds lim's max_payload.
func tooLarge(what string, lim wire.Limits) *wire.Error {
	return &wire.Error{Kind: wire.KindTooLarge, Message: fmt.Sprintf("%s exceeds max_payload (%d bytes), which `natsmesh broker --max-payload` raises", what, lim.PayloadLimit())}
}

// CheckHeaderLimits applies lim's header bounds (MaxHeaders,
// MaxHeaderBytes) to h counted as [EncodeRequest] counts them: the
// end-to-end headers, hop-by-hop ones and Content-Length left out. A
// gateway that adds headers of its own checks the client's with it first,
// so what it adds never counts against the client.
func CheckHeaderLimits(h http.Header, lim wire.Limits) error {
	conn := connectionTokens(h["Connection"])
	count, size := 0, 0
	for k, vs := range h {
		if isHopByHop(k, conn) || strings.EqualFold(k, "Content-Length") || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			size += len(k) + len(v) + 4
			count++
		}
	}
	return wire.Limits{MaxPayload: 1 << 62, MaxHeaders: lim.HeadersLimit(), MaxHeaderBytes: lim.HeaderBytesLimit()}.Check(&nats.Msg{}, count, size)
}

// CheckTrailer applies the mesh's header bounds to a streamed request's
// header and the trailer its end brought, together, as a whole call's are
// checked when it is decoded: headers-too-large past them.
func CheckTrailer(h, trailer http.Header) error { return checkDecodedHeaderLimits(h, trailer) }

// checkDecodedHeaderLimits applies the mesh's header bounds
// (wire.DefaultMaxHeaders, wire.DefaultMaxHeaderBytes, as the listeners and
// pipeline.LimitsOf have them) to the headers and trailers a decoder
// hands the service.
func checkDecodedHeaderLimits(h, trailer http.Header) error {
	count, size := 0, 0
	for _, hh := range []http.Header{h, trailer} {
		for k, vs := range hh {
			for _, v := range vs {
				size += len(k) + len(v) + 4
				count++
			}
		}
	}
	return wire.Limits{MaxPayload: 1 << 62}.Check(&nats.Msg{}, count, size)
}

// checkFraming rejects requests whose length is ambiguous, the root of
// request smuggling (RFC 9112 section 6.3).
func checkFraming(h http.Header, te []string) error {
	cl := h.Values("Content-Length")
	if len(te) > 0 || len(h.Values("Transfer-Encoding")) > 0 {
		if len(cl) > 0 {
			return &wire.Error{Kind: wire.KindBadRequest, Message: "both Content-Length and Transfer-Encoding"}
		}
		return nil
	}
	var first string
	for i, v := range cl {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if _, err := strconv.ParseUint(p, 10, 63); err != nil {
				return &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad Content-Length %q", v)}
			}
			if i == 0 && first == "" {
				first = p
			} else if p != first {
				return &wire.Error{Kind: wire.KindBadRequest, Message: "conflicting Content-Length values"}
			}
		}
	}
	return nil
}

// readLimited reads a body of at most max bytes.
func readLimited(body io.Reader, hint, max int64) ([]byte, error) {
	if hint > 0 && hint <= max {
		// A known length (as the listeners and net/http's client frame
		// it, the body ends there): one buffer of it, read in place, and
		// one read past it that must find the end. No bytes.Buffer, no
		// LimitReader: four allocations less a round trip (issue 20).
		buf := make([]byte, hint, hint+1) // room for the read past it
		n, err := readFull(body, buf)
		if err == io.EOF {
			return buf[:n], nil // shorter than told: what came, as bytes.Buffer reads it
		}
		if err != nil {
			return nil, bodyError(err)
		}
		if _, err = readFull(body, buf[hint:hint+1]); err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, bodyError(err)
		}
		// Longer than told: read it as one of unknown length.
		rest, err := readLimited(body, -1, max-hint-1)
		if err != nil {
			if e := wire.FromError(err); e.Kind == wire.KindTooLarge {
				return nil, tooLarge("body", wire.Limits{MaxPayload: max})
			}
			return nil, err
		}
		return append(buf[:hint+1], rest...), nil
	}
	// bytes.Buffer.ReadFrom wants MinRead bytes free before each read, the
	// last one included (the one that sees EOF): with a capacity of exactly
	// hint, every sized body would be copied once into a buffer twice as big.
	capacity := int64(bytes.MinRead)
	if hint > 0 {
		capacity = min(hint, max) + bytes.MinRead
	}
	buf := bytes.NewBuffer(make([]byte, 0, capacity))
	n, err := buf.ReadFrom(io.LimitReader(body, max+1))
	if err != nil {
		return nil, bodyError(err)
	}
	if n > max {
		return nil, tooLarge("body", wire.Limits{MaxPayload: max})
	}
	return buf.Bytes(), nil
}

// readFull reads into p until it is full, or the reader's end (io.EOF,
// with what came before it) or error; unlike io.ReadFull, an end short of
// full is io.EOF, so that a body's own io.ErrUnexpectedEOF (net/http's,
// for a connection closed before the length it told) stays an error.
func readFull(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			if err == io.EOF && n == len(p) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}

// bodyError is a failed read of a body: a listener's own verdict (a body
// that timed out: request-timeout) stands; anything else is a broken
// request.
func bodyError(err error) *wire.Error {
	var me *wire.Error
	if errors.As(err, &me) {
		return me
	}
	return &wire.Error{Kind: wire.KindBadRequest, Message: "reading body: " + err.Error(), Err: err}
}

// copyHeaders copies the end-to-end headers of src into dst, under escaped
// names behind prefix, leaving out skip (any spelling) when set, and
// returns how many values and bytes it copied.
func copyHeaders(dst nats.Header, src http.Header, prefix, skip string) (count, size int) {
	if len(src) == 0 {
		return 0, 0
	}
	conn := connectionTokens(src["Connection"])
	for k, vs := range src {
		if isHopByHop(k, conn) || (prefix == "" && strings.EqualFold(k, "Content-Length")) || (skip != "" && strings.EqualFold(k, skip)) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			// nats.go refuses to publish a message with such a name
			// (ErrBadHeaderMsg), so one stray header ("Trailer:X" set before
			// WriteHeader, a name with a space) would lose the whole reply.
			// Go's own server rejects such names on the way in.
			continue
		}
		name := prefix + wire.EscapeHeaderName(k)
		for _, v := range vs {
			size += len(k) + len(v) + 4
			count++
		}
		dst[name] = appendValues(dst[name], vs)
	}
	return count, size
}

// appendValues appends vs to dst. The common case, a name seen once, shares
// vs instead of copying it; the full slice expression makes a later append by
// either side copy instead of writing into the other's array.
func appendValues(dst, vs []string) []string {
	if dst == nil {
		return vs[:len(vs):len(vs)]
	}
	return append(dst, vs...)
}

// readHeaders splits the service headers and trailers out of a NATS header.
// Names keep their case (NATS headers are case-sensitive and nats.go keeps
// them), but the headers the decoder owns are dropped in every spelling:
// Content-Length and Host. A raw NATS client could otherwise send
// "content-length" beside the Content-Length the decoder sets, and the
// service would see both (request smuggling on a shared keep-alive pool).
// Hop-by-hop headers are dropped too: the message may come from any NATS
// client, not only from EncodeRequest.
//
// So are names and values that are not valid HTTP ("Mesh-Hdr-" alone names
// the empty header; NATS passes NUL bytes in values): Go's own server would
// have refused them with 400, and its client refuses to send them, which
// would fail the receiver's local call.
//
// In a reply (reply true), a service's own header that names mesh error
// metadata stays escaped, so a client never mistakes it for the mesh's.
func readHeaders(src nats.Header, reply bool) (h, trailer http.Header) {
	h = make(http.Header, len(src))
	conn := connectionTokens(src["Connection"])
	for k, vs := range src {
		dst, key := &h, k
		if strings.HasPrefix(k, wire.HeaderTrailerPrefix) {
			dst, key = &trailer, k[len(wire.HeaderTrailerPrefix):]
		}
		name, ok := wire.UnescapeHeaderName(key)
		if !ok || !httpguts.ValidHeaderFieldName(name) || isHopByHop(name, conn) || decoderOwned(name) || !validValues(vs) {
			continue
		}
		if reply && (strings.EqualFold(name, wire.HeaderError) || strings.EqualFold(name, wire.HeaderErrorMessage)) {
			name = wire.HeaderEscapedPrefix + name
		}
		if *dst == nil {
			*dst = make(http.Header)
		}
		(*dst)[name] = appendValues((*dst)[name], vs)
	}
	return h, trailer
}

// decoderOwned reports whether the decoder sets the header itself.
func decoderOwned(name string) bool {
	return strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Host")
}

func validValues(vs []string) bool {
	for _, v := range vs {
		if !httpguts.ValidHeaderFieldValue(v) {
			return false
		}
	}
	return true
}

// DecodeRequest turns a request message into a server-side *http.Request
// (as an http.Handler receives it) under ctx. When the message carries a
// timeout, the request's context gets that deadline; call cancel when done.
// It fails with KindBadRequest when the message is not an HTTP request, and
// when a value that goes into the request line or Host is not valid there
// (Mesh-Method, Mesh-Path, Mesh-Query, Mesh-Host): whatever it accepts
// serializes as one request line with the same method, target and Host.
func DecodeRequest(ctx context.Context, m *nats.Msg) (r *http.Request, cancel context.CancelFunc, err error) {
	var op string
	if proto, o, ok := wire.SubjectOp(m.Subject); ok && proto == wire.ProtoHTTP {
		op = o
	}
	timeout, err := wire.Timeout(m.Header)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel = withRequestTimeout(ctx, timeout)
	r, err = DecodeCall(ctx, m.Header, m.Data, op)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return r, cancel, nil
}

// DecodeCall is [DecodeRequest] for a message the receiver has
// parsed already, on the path where ctx carries the call's deadline (the
// inbound pipeline sets it from Mesh-Timeout): subjectMethod is the
// subject's operation ("" when it was no mesh HTTP subject), and the
// request gets ctx as it is.
func DecodeCall(ctx context.Context, hdr nats.Header, data []byte, subjectMethod string) (*http.Request, error) {
	r, err := decodeHead(hdr, subjectMethod)
	if err != nil {
		return nil, err
	}
	r.ContentLength = int64(len(data))
	if len(data) > 0 {
		body := newBytesBody(data)
		r.Body = body
		r.GetBody = body.again
		r.Header.Set("Content-Length", strconv.Itoa(len(data)))
	}
	return r.WithContext(ctx), nil
}

// decodeHead is the request a message's header makes, with no body yet
// ([DecodeCall], [DecodeStreamCall]).
func decodeHead(hdr nats.Header, subjectMethod string) (*http.Request, error) {
	method := hdr.Get(wire.HeaderMethod)
	if method == "" || !validMethod(method) {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("missing or bad %s %q", wire.HeaderMethod, method)}
	}
	// On a mesh subject the method is also the subject's operation, which
	// permissions may be written on: the header must not say otherwise.
	if subjectMethod != "" && subjectMethod != method {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("%s %q differs from the subject's operation %q", wire.HeaderMethod, method, subjectMethod)}
	}
	path := hdr.Get(wire.HeaderPath)
	if path == "" {
		path = "/"
	}
	if path[0] != '/' || !validTarget(path, "?#") {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %.64q", wire.HeaderPath, path)}
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	requestURI := path
	if q := hdr.Get(wire.HeaderQuery); q != "" {
		if !validTarget(q, "") {
			return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %.64q", wire.HeaderQuery, q)}
		}
		requestURI += "?" + q
	}
	host := hdr.Get(wire.HeaderHost)
	if err := checkRequest(method, hdr.Get(wire.HeaderQuery), host); err != nil {
		return nil, err
	}
	if !httpguts.ValidHostHeader(host) {
		// Go's client would refuse to send it, or send no Host at all.
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %.64q", wire.HeaderHost, host)}
	}
	u, err := url.ParseRequestURI(requestURI)
	if err != nil {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: "bad request path: " + err.Error(), Err: err}
	}
	h, trailer := readHeaders(hdr, false)
	// The message may come from any NATS client, not only from an
	// EncodeRequest bounded by the listeners' limits: the service gets
	// no more than a listener would have let through (the mesh's header
	// limits, headers and trailers counted together as EncodeRequest
	// counts them), else 431 headers-too-large.
	if err := checkDecodedHeaderLimits(h, trailer); err != nil {
		return nil, err
	}
	if up, ok := hdr[HeaderUpgrade]; ok {
		if err := setUpgrade(h, up); err != nil {
			return nil, err
		}
	}
	return &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Trailer:    trailer,
		Host:       host,
		RequestURI: requestURI,
		Body:       http.NoBody,
	}, nil
}

// validTarget reports whether s may stand in a request line's target: no
// space (which would end the target and start a forged version, "a=1
// HTTP/0.9"), no control byte, none of also. A message may
// come from any NATS client, so what EncodeRequest never produces must
// still be refused here.
func validTarget(s, also string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte(also, c) >= 0 {
			return false
		}
	}
	return true
}

// validMethod reports whether m is an HTTP token (RFC 9110 section 5.6.2).
func validMethod(m string) bool {
	if len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// ResponseMsg is the reply that carries a service's HTTP answer. Header
// and trailer are copied as in [EncodeRequest]; a body over max_payload,
// or headers over lim, give a *wire.Error instead, to be sent with [ErrorMsg].
func ResponseMsg(status int, header http.Header, body []byte, trailer http.Header, lim wire.Limits) (*nats.Msg, error) {
	m := &nats.Msg{Header: make(nats.Header, len(header)+2), Data: body}
	n, size := copyHeaders(m.Header, header, "", "")
	tn, tsize := copyHeaders(m.Header, trailer, wire.HeaderTrailerPrefix, "")
	m.Header[wire.HeaderStatus] = []string{strconv.Itoa(status)}
	if err := lim.Check(m, n+tn, size+tsize); err != nil {
		return nil, err
	}
	return m, nil
}

// EncodeResponse reads resp (body bounded by lim, then closed) into the
// reply message for the caller.
func EncodeResponse(resp *http.Response, lim wire.Limits) (*nats.Msg, error) {
	defer resp.Body.Close()
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		// A HEAD answer has no body but tells the length a GET would get.
		m, err := ResponseMsg(resp.StatusCode, resp.Header, nil, resp.Trailer, lim)
		if err == nil && resp.ContentLength >= 0 {
			m.Header[wire.HeaderContentLength] = []string{strconv.FormatInt(resp.ContentLength, 10)}
		}
		return m, err
	}
	if resp.ContentLength > lim.PayloadLimit() {
		return nil, tooLarge(fmt.Sprintf("response body of %d bytes", resp.ContentLength), lim)
	}
	body, err := readLimited(resp.Body, resp.ContentLength, lim.PayloadLimit())
	if err != nil {
		if e := wire.FromError(err); e.Kind == wire.KindBadRequest {
			// A broken response body is the upstream's failure, not the caller's.
			e.Kind = wire.KindUpstream
			return nil, e
		}
		return nil, err
	}
	return ResponseMsg(resp.StatusCode, resp.Header, body, resp.Trailer, lim)
}

// DecodeResponse turns a reply into an *http.Response. A mesh error reply
// is returned as a *wire.Error and no response. A reply without Mesh-Status is a
// NATS-native answer (a nats.go/micro service, say): 200 with the payload,
// or, when it carries micro's Nats-Service-Error headers, the error code as
// the status (400 to 599 as they are, anything else 500) and the description
// as a plain-text body.
func DecodeResponse(m *nats.Msg) (*http.Response, error) {
	status, h, trailer, body, meshReply, err := decodeResponseHeader(m.Header, m.Data)
	if err != nil {
		return nil, err
	}
	contentLength := int64(len(body))
	if cl := m.Header.Get(wire.HeaderContentLength); cl != "" && len(body) == 0 && meshReply {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			contentLength = n
		}
	}
	h.Set("Content-Length", strconv.FormatInt(contentLength, 10))
	return newResponse(status, h, trailer, body, contentLength), nil
}

// decodeResponseHeader reads a reply's header (and, for a micro error
// without one, makes its body): its status, the service's headers and
// trailers, and whether it is a mesh reply (Mesh-Status); a mesh error
// reply is its *wire.Error.
func decodeResponseHeader(hdr nats.Header, data []byte) (status int, h, trailer http.Header, body []byte, meshReply bool, err error) {
	if e := wire.ReplyError(hdr); e != nil {
		return 0, nil, nil, nil, false, e
	}
	status, meshReply = statusOf(hdr)
	body = data
	switch {
	case meshReply:
		h, trailer = readHeaders(hdr, true)
		if up, ok := hdr[HeaderUpgrade]; ok && status == http.StatusSwitchingProtocols {
			if err := setUpgrade(h, up); err != nil {
				return 0, nil, nil, nil, false, err
			}
		}
	case hdr.Get(micro.ErrorHeader) != "" || hdr.Get(micro.ErrorCodeHeader) != "":
		status = wire.MicroHTTPStatus(hdr.Get(micro.ErrorCodeHeader))
		// The service's words go into HTTP headers: no control bytes.
		h = http.Header{
			"Content-Type":        {"text/plain; charset=utf-8"},
			micro.ErrorHeader:     {wire.HeaderSafe(hdr.Get(micro.ErrorHeader))},
			micro.ErrorCodeHeader: {wire.HeaderSafe(hdr.Get(micro.ErrorCodeHeader))},
		}
		if len(body) == 0 {
			body = []byte(hdr.Get(micro.ErrorHeader) + "\n")
		}
	default:
		status = http.StatusOK
		h = make(http.Header, len(hdr))
		conn := connectionTokens(hdr["Connection"])
		for k, vs := range hdr {
			if httpguts.ValidHeaderFieldName(k) && !isHopByHop(k, conn) && !decoderOwned(k) && validValues(vs) {
				h[k] = vs
			}
		}
	}
	return status, h, trailer, body, meshReply, nil
}

// newResponse is a complete client-side response with body in memory.
func newResponse(status int, h, trailer http.Header, body []byte, contentLength int64) *http.Response {
	return &http.Response{
		Status:        statusLine(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Trailer:       trailer,
		Body:          newBytesBody(body),
		ContentLength: contentLength,
	}
}

// bytesBody is a body in memory: one allocation, where
// io.NopCloser(bytes.NewReader(b)) makes two.
type bytesBody struct {
	bytes.Reader
	b []byte
}

func newBytesBody(b []byte) *bytesBody {
	body := &bytesBody{b: b}
	body.Reset(b)
	return body
}

func (*bytesBody) Close() error { return nil }

// again is the body anew, from its start (http.Request.GetBody).
func (b *bytesBody) again() (io.ReadCloser, error) { return newBytesBody(b.b), nil }

// statusLines are the http.Response.Status of the statuses Go knows,
// made once: a response decoded makes none.
var statusLines = func() (lines [600]string) {
	for code := range lines {
		if text := http.StatusText(code); text != "" {
			lines[code] = strconv.Itoa(code) + " " + text
		}
	}
	return lines
}()

// statusLine is the http.Response.Status of status: "200 OK".
func statusLine(status int) string {
	if status >= 0 && status < len(statusLines) && statusLines[status] != "" {
		return statusLines[status]
	}
	return strconv.Itoa(status) + " " + http.StatusText(status)
}

// WriteResponse writes resp to w: headers, status, body, then trailers.
// It closes resp.Body.
func WriteResponse(w http.ResponseWriter, resp *http.Response) error {
	defer resp.Body.Close()
	dst := w.Header()
	for k, vs := range resp.Header {
		dst[k] = vs
	}
	for k := range resp.Trailer {
		dst.Add("Trailer", k)
	}
	if len(resp.Trailer) > 0 {
		// Trailers need a chunked HTTP/1.1 answer; with Content-Length set,
		// Go's server sends a sized body and drops the trailers silently.
		dst.Del("Content-Length")
	}
	w.WriteHeader(resp.StatusCode)
	_, err := io.Copy(w, resp.Body)
	for k, vs := range resp.Trailer {
		dst[k] = vs
	}
	return err
}
