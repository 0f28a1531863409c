package httpwire

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"golang.org/x/net/http/httpguts"

	"github.com/natsmesh/natsmesh/wire"
)

// HeaderUpgrade is wire.HeaderUpgrade: the decoders give the request and
// the answer Upgrade and "Connection: Upgrade" back.
const HeaderUpgrade = wire.HeaderUpgrade

// Upgrade is the protocol an upgrade request asks for (its Upgrade header,
// when Connection names "upgrade"), or "". An upgrade to h2c is none the
// mesh carries, "": HTTP/2 without TLS ends at the listener, which
// switches its connection to it or serves the request as a plain one.
func Upgrade(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") || httpguts.HeaderValuesContainsToken(h["Upgrade"], "h2c") {
		return ""
	}
	return strings.Join(h.Values("Upgrade"), ", ")
}

// setUpgrade gives h the Upgrade of a message's Mesh-Upgrade values, and
// the Connection header that makes it one.
func setUpgrade(h http.Header, up []string) error {
	if len(up) != 1 || up[0] == "" || !httpguts.ValidHeaderFieldValue(up[0]) {
		return &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad %s %.64q", HeaderUpgrade, up)}
	}
	if httpguts.HeaderValuesContainsToken(up, "h2c") {
		// HTTP/2 is each listener's own, never carried as an upgrade.
		return &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("%s: h2c is never carried across the mesh", HeaderUpgrade)}
	}
	h["Upgrade"] = up
	h["Connection"] = []string{"Upgrade"}
	return nil
}

// EncodeRequestHead is [EncodeRequest] for a request whose body is
// streamed: the first message's header only, whose body the caller reads
// as a stream (it is neither read nor closed here). The header has the
// request line and the end-to-end headers as EncodeRequest has them,
// Content-Length when the length is known, each declared trailer as
// Mesh-Trailer-<name> with an empty value (their values come at the end of
// the stream: [TrailerHeader]), and, for an upgrade request ([Upgrade]),
// Mesh-Upgrade. Its errors are EncodeRequest's, but too-large: max_payload
// bounds the header only.
func EncodeRequestHead(r *http.Request, lim wire.Limits) (*nats.Msg, error) {
	if err := checkFraming(r.Header, r.TransferEncoding); err != nil {
		return nil, err
	}
	m, n, size, err := encodeHead(r, 2)
	if err != nil {
		return nil, err
	}
	if r.ContentLength > 0 {
		m.Header["Content-Length"] = []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	if up := Upgrade(r.Header); up != "" {
		m.Header[HeaderUpgrade] = []string{up}
	}
	tn, tsize := declareTrailers(m.Header, r.Trailer)
	if err := lim.Check(m, n+tn, size+tsize); err != nil {
		return nil, err
	}
	return m, nil
}

// declareTrailers puts the names of trailer in dst as Mesh-Trailer-<name>
// with an empty value: trailers announced before a stream, whose values
// come at its end. It counts them as copyHeaders does.
func declareTrailers(dst nats.Header, trailer http.Header) (count, size int) {
	for k := range trailer {
		if isHopByHop(k, nil) || strings.EqualFold(k, "Content-Length") || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		dst[wire.HeaderTrailerPrefix+wire.EscapeHeaderName(k)] = []string{""}
		size += len(k) + 4
		count++
	}
	return count, size
}

// TrailerHeader is trailer as the end of a stream carries it
// (pipeline.Stream's Trailer): each field behind Mesh-Trailer-, escaped
// as a whole message's are; nil for none.
func TrailerHeader(trailer http.Header) nats.Header {
	var h nats.Header
	for k, vs := range trailer {
		if len(vs) == 0 {
			continue
		}
		if h == nil {
			h = make(nats.Header, len(trailer))
		}
		copyHeaders(h, http.Header{k: vs}, wire.HeaderTrailerPrefix, "")
	}
	return h
}

// ReadTrailer is the HTTP trailer that the end of a stream carries
// (Mesh-Trailer-<name>), read as the decoders read a whole message's; a
// reply's (reply true) keeps a service's Mesh-Error escaped. Nil for none.
func ReadTrailer(h nats.Header, reply bool) http.Header {
	if len(h) == 0 {
		return nil
	}
	_, trailer := readHeaders(h, reply)
	return trailer
}

// DecodeStreamCall is [DecodeCall] for a call whose body is streamed:
// the request its first message's header makes, whose Body is body. Its
// ContentLength is the header's Content-Length, else -1 (unknown: the
// service gets a chunked body); its Trailer has the declared names, with
// no values until the body's end, which the caller fills ([ReadTrailer]).
func DecodeStreamCall(ctx context.Context, hdr nats.Header, body io.ReadCloser, subjectMethod string) (*http.Request, error) {
	r, err := decodeHead(hdr, subjectMethod)
	if err != nil {
		return nil, err
	}
	r.ContentLength = -1
	if n, ok := headLength(hdr); ok {
		r.ContentLength = n
		r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
	}
	for k := range r.Trailer {
		r.Trailer[k] = nil
	}
	r.Body = body
	return r.WithContext(ctx), nil
}

// headLength is the Content-Length a stream's first message tells, when
// it tells a valid one.
func headLength(h nats.Header) (int64, bool) {
	v := h["Content-Length"]
	if len(v) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	return n, err == nil && n >= 0 && v[0][0] != '+'
}

// ResponseHead is the first message of an answer whose body is streamed:
// [ResponseMsg] without a body, with Content-Length when length is known
// (not negative), each trailer of trailer declared as
// Mesh-Trailer-<name> with an empty value (its value comes at the end of
// the stream: [TrailerHeader]), and, for a 101, Mesh-Upgrade from
// header's Upgrade. Past lim's header bounds it fails as ResponseMsg does.
func ResponseHead(status int, header http.Header, length int64, trailer http.Header, lim wire.Limits) (*nats.Msg, error) {
	m := &nats.Msg{Header: make(nats.Header, len(header)+len(trailer)+3)}
	n, size := copyHeaders(m.Header, header, "", "")
	tn, tsize := declareTrailers(m.Header, trailer)
	m.Header[wire.HeaderStatus] = []string{strconv.Itoa(status)}
	if length >= 0 {
		m.Header["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	}
	if status == http.StatusSwitchingProtocols {
		if up := header.Values("Upgrade"); len(up) > 0 {
			m.Header[HeaderUpgrade] = []string{strings.Join(up, ", ")}
		}
	}
	if err := lim.Check(m, n+tn, size+tsize); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeResponseHead is [DecodeResponse] for the first message of an
// answer whose body is streamed: the response without a body (the caller
// sets Body to the stream's), its ContentLength the header's
// Content-Length, else -1; its Trailer the declared names, with no values
// until the body's end, which the caller fills ([ReadTrailer]); a 101 with
// Mesh-Upgrade gets Upgrade and Connection back.
func DecodeResponseHead(hdr nats.Header) (*http.Response, error) {
	status, h, trailer, body, _, err := decodeResponseHeader(hdr, nil)
	if err != nil {
		return nil, err
	}
	length := int64(-1)
	if n, ok := headLength(hdr); ok && len(body) == 0 {
		length = n
		h.Set("Content-Length", strconv.FormatInt(n, 10))
	}
	for k := range trailer {
		trailer[k] = nil
	}
	resp := newResponse(status, h, trailer, body, length)
	if len(body) > 0 {
		// A micro error's own words: a whole body after all.
		resp.ContentLength = int64(len(body))
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return resp, nil
}
