package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Mesh metadata headers. Every header the mesh itself sets starts with
// "Mesh-"; a service's own header with a reserved name travels escaped (see
// [EscapeHeaderName]), so these are never forged or confused.
const (
	// HeaderMethod, HeaderPath, HeaderQuery and HeaderHost carry the HTTP
	// request line: the method, the escaped path (as sent), the raw query and
	// the Host the client used.
	HeaderMethod = "Mesh-Method"
	HeaderPath   = "Mesh-Path"
	HeaderQuery  = "Mesh-Query"
	HeaderHost   = "Mesh-Host"
	// HeaderTimeout is the time left until the caller's deadline when the
	// request was sent, as a Go duration ("1.5s"). The receiver applies it to
	// the local call, so no work continues after the caller has given up.
	HeaderTimeout = "Mesh-Timeout"
	// HeaderStatus is the HTTP status of a service's answer. Its presence is
	// what marks a reply as the service's own answer and not a NATS status.
	HeaderStatus = "Mesh-Status"
	// HeaderContentLength is the Content-Length of a bodiless answer to
	// HEAD: the length a GET would have had.
	HeaderContentLength = "Mesh-Content-Length"
	// HeaderCaller is set by the receiving side from the subject, never
	// trusted from the message.
	HeaderCaller = "Mesh-Caller"

	// HeaderEscapedPrefix marks a service header whose name is reserved
	// (see [EscapeHeaderName]).
	HeaderEscapedPrefix = "Mesh-Hdr-"
	// HeaderTrailerPrefix marks a trailer (HTTP trailers, gRPC trailing
	// metadata): "Mesh-Trailer-X-Sum" is the trailer X-Sum.
	HeaderTrailerPrefix = "Mesh-Trailer-"
)

// reservedName reports whether a header name belongs to NATS or the mesh.
// "Status" and "Description" are what nats.go reads a NATS status into: a
// service header under one of those names must not reach NATS as it is (a
// reply with "Status: 503" and no body would read as "no responders").
func reservedName(name string) bool {
	// EqualFold, not a map of lower-cased names: this runs for every header
	// of every message, and ToLower allocates.
	return strings.EqualFold(name, "status") || strings.EqualFold(name, "description") ||
		hasPrefixFold(name, "mesh-") || hasPrefixFold(name, "nats-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// EscapeHeaderName returns the name under which a service's header travels in
// NATS: the same name, or, for names NATS or the mesh reserve, the name behind
// "Mesh-Hdr-". [UnescapeHeaderName] restores it.
func EscapeHeaderName(name string) string {
	if reservedName(name) {
		return HeaderEscapedPrefix + name
	}
	return name
}

// UnescapeHeaderName reverses [EscapeHeaderName]. ok is false for mesh
// metadata headers, which are not the service's.
func UnescapeHeaderName(name string) (orig string, ok bool) {
	if strings.HasPrefix(name, HeaderEscapedPrefix) {
		return name[len(HeaderEscapedPrefix):], true
	}
	if reservedName(name) {
		return "", false
	}
	return name, true
}

// Limits bound what is converted, so that too-large input gets a clear error
// before anything is published. The zero value uses the defaults.
type Limits struct {
	// MaxPayload is the broker's max_payload: headers plus body of one NATS
	// message. Default 1 MiB, the nats-server default; agents use
	// nats.Conn.MaxPayload().
	MaxPayload int64
	// MaxHeaderBytes bounds the total size of headers. Default 64 KiB.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header values. Default 100.
	MaxHeaders int
}

// Default limits.
const (
	DefaultMaxPayload     = 1 << 20
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxHeaders     = 100
)

// PayloadLimit is MaxPayload or its default.
func (l Limits) PayloadLimit() int64 {
	if l.MaxPayload > 0 {
		return l.MaxPayload
	}
	return DefaultMaxPayload
}

// HeaderBytesLimit is MaxHeaderBytes or its default.
func (l Limits) HeaderBytesLimit() int {
	if l.MaxHeaderBytes > 0 {
		return l.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

// HeaderListSize is the largest header list, as HTTP/2 counts it (each
// field's name and value and 32 bytes, RFC 9113 section 6.5.2), that l
// can admit: HeaderBytesLimit and 32 bytes for each of HeadersLimit's
// fields. An HTTP/2 listener of the mesh refuses a longer list while it
// decodes it (SETTINGS_MAX_HEADER_LIST_SIZE), before it holds it whole.
func (l Limits) HeaderListSize() uint32 {
	return uint32(l.HeaderBytesLimit() + 32*l.HeadersLimit())
}

// HeadersLimit is MaxHeaders or its default.
func (l Limits) HeadersLimit() int {
	if l.MaxHeaders > 0 {
		return l.MaxHeaders
	}
	return DefaultMaxHeaders
}

// headerSize is the size of h as nats.go writes it ("NATS/1.0\r\n", then
// "key: value\r\n" per value, then "\r\n").
func headerSize(h nats.Header) (bytes, count int) {
	bytes = len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			bytes += len(k) + len(v) + 4
			count++
		}
	}
	return bytes, count
}

// Check applies l to a message about to be published, as the codecs do:
// the service's own headers (userCount values of userBytes bytes, as
// nats.go writes them) are counted against MaxHeaders and MaxHeaderBytes,
// the whole message against MaxPayload. Its errors are *Error of kind
// KindHeadersTooLarge or KindTooLarge.
func (l Limits) Check(m *nats.Msg, userCount, userBytes int) error {
	if userCount > l.HeadersLimit() {
		return &Error{Kind: KindHeadersTooLarge, Message: fmt.Sprintf("%d header values, more than the limit of %d", userCount, l.HeadersLimit())}
	}
	if userBytes > l.HeaderBytesLimit() {
		return &Error{Kind: KindHeadersTooLarge, Message: fmt.Sprintf("%d bytes of headers, more than the limit of %d", userBytes, l.HeaderBytesLimit())}
	}
	hb, _ := headerSize(m.Header)
	if total := int64(hb) + int64(len(m.Data)); total > l.PayloadLimit() {
		return &Error{Kind: KindTooLarge, Message: fmt.Sprintf("message of %d bytes exceeds max_payload (%d bytes), which `natsmesh broker --max-payload` raises", total, l.PayloadLimit())}
	}
	return nil
}

// SetTimeout records left, the time until the caller's deadline, as the
// message's Mesh-Timeout. The outbound pipeline sets it on each attempt.
func SetTimeout(h nats.Header, left time.Duration) {
	if left < time.Millisecond {
		left = time.Millisecond
	}
	h[HeaderTimeout] = []string{left.Round(time.Microsecond).String()}
}

// HeaderUpgrade carries an HTTP protocol upgrade (RFC 9110 section
// 7.8), whose Upgrade and Connection headers are hop-by-hop and never
// cross otherwise: on a request, the Upgrade the client asked for
// ("websocket"); on a 101 answer, the protocol the service switched to.
// An upgraded call's bodies are streams: the client's bytes after its
// request, and the service's after its 101, which follow the answer's
// head (so a deadline the caller did not choose bounds its head, not
// the tunnel).
const HeaderUpgrade = "Mesh-Upgrade"

// HeaderSubset is, on a call addressed to one instance (InstancePrefix),
// the subset the call named before it was addressed there, when it named
// one: the callee counts the call as that subset's when it is its own.
// Nothing else reads it: the broker routes on the subject.
const HeaderSubset = "Mesh-Subset"

// HeaderStartBy is the caller's deadline as an absolute time, Unix
// milliseconds: a receiver never starts the call after it (give or take
// the clock skew it tolerates), however long the message waited in a
// socket or a frozen process, and its local deadline is no later.
// Mesh-Timeout is relative to the message's receipt and cannot tell
// time spent queued; this can.
const HeaderStartBy = "Mesh-Start-By"

// SetStartBy sets h's HeaderStartBy to deadline.
func SetStartBy(h nats.Header, deadline time.Time) {
	h[HeaderStartBy] = []string{strconv.FormatInt(deadline.UnixMilli(), 10)}
}

// StartBy reads h's HeaderStartBy: ok false when it has none; a
// bad-request *Error for a malformed one.
func StartBy(h nats.Header) (time.Time, bool, error) {
	v := h.Get(HeaderStartBy)
	if v == "" {
		return time.Time{}, false, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false, &Error{Kind: KindBadRequest, Message: fmt.Sprintf("bad %s %.32q", HeaderStartBy, v)}
	}
	return time.UnixMilli(ms), true, nil
}

// MaxTimeout bounds a propagated timeout, so a forged header cannot pin work
// for days.
const MaxTimeout = 24 * time.Hour

// Timeout reads the propagated timeout of a request message: 0 and no error
// when there is none.
func Timeout(h nats.Header) (time.Duration, error) {
	v := h.Get(HeaderTimeout)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &Error{Kind: KindBadRequest, Message: fmt.Sprintf("bad %s %q", HeaderTimeout, v)}
	}
	if d > MaxTimeout {
		d = MaxTimeout
	}
	return d, nil
}

// RequestTimeout reads the deadline an HTTP client asks for with the
// Mesh-Timeout request header, a Go duration ("1s", "250ms", "1m30s"), as
// the mesh's HTTP entry points (the agent's proxy, bind ports and
// Transport, the edge gateway) honour it: 0 and no error when there is
// none, a bad-request *Error for a malformed or non-positive value. The
// entry point consumes it: httpwire.EncodeRequest never sends it on as a
// header of the service's, and the message carries the time left instead.
func RequestTimeout(h map[string][]string) (time.Duration, error) {
	var v string
	for k, vs := range h {
		if strings.EqualFold(k, HeaderTimeout) && len(vs) > 0 {
			v = vs[0]
			break
		}
	}
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return 0, &Error{Kind: KindBadRequest, Message: fmt.Sprintf("bad %s request header %.32q: want a positive duration such as 1s or 250ms", HeaderTimeout, v)}
	}
	return min(d, MaxTimeout), nil
}
