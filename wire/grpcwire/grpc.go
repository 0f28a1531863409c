package grpcwire

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/natsmesh/natsmesh/wire"
)

// gRPC metadata headers. A unary gRPC call is one NATS request: the request
// message is the payload, the full method travels in Mesh-Grpc-Method (and, escaped,
// in the subject's op token), and the metadata in NATS headers. The reply
// carries the response message, the header metadata, the trailer metadata
// behind "Mesh-Trailer-", and the status in Mesh-Grpc-Status (always present,
// so a service's reply is never confused with a NATS status such as
// "no responders"), Mesh-Grpc-Message and Mesh-Grpc-Details.
const (
	// HeaderGRPCMethod is the full method name, "/pkg.Service/Method".
	HeaderGRPCMethod = "Mesh-Grpc-Method"
	// HeaderGRPCStatus is the status code as a decimal number
	// ([wire.HeaderGRPCStatus], which reads it in [wire.OutcomeOf]).
	HeaderGRPCStatus = wire.HeaderGRPCStatus
	// HeaderGRPCMessage is the status message, percent-encoded as gRPC
	// encodes grpc-message (bytes outside %x20-%x7E, and '%', as %XX).
	HeaderGRPCMessage = "Mesh-Grpc-Message"
	// HeaderGRPCDetails is the google.rpc.Status proto of a status with
	// details, in unpadded standard base64 (like grpc-status-details-bin).
	HeaderGRPCDetails = "Mesh-Grpc-Details"

	// MetadataCaller is the incoming metadata key under which
	// meshgrpc.Upstream tells the local service who called. It is set from
	// the subject, which the broker vouches for; a value sent by the caller
	// under this key is dropped by [DecodeRequest].
	MetadataCaller = "mesh-caller"
)

// maxMethodLen bounds a full gRPC method name.
const maxMethodLen = 1024

// Request is a gRPC call as it crosses the mesh: a unary call, or the
// head of a streaming one (Stream set).
type Request struct {
	// Method is the full method name, "/pkg.Service/Method".
	Method string
	// Metadata is the request metadata. Keys are lower-case (upper-case keys
	// are lowered on encoding); values of "-bin" keys are binary.
	Metadata metadata.MD
	// Payload is the serialized request message; for a stream, the
	// messages framed ([AppendMessage]) when the body crosses whole, nil
	// when it is a stream of its own.
	Payload []byte
	// Stream marks a call of a streaming method ([HeaderGRPCStream]).
	Stream bool
	// Timeout is the time left until the caller's deadline, 0 for none. On
	// encoding it becomes Mesh-Timeout; on decoding it is read from there.
	Timeout time.Duration
}

// Response is the answer to a unary gRPC call as it crosses the mesh.
type Response struct {
	// Payload is the serialized response message. It is only sent when
	// Status is OK: a failed gRPC call has no response message.
	Payload []byte
	// Header and Trailer are the response's header and trailer metadata.
	Header, Trailer metadata.MD
	// Status is the call's status; nil means OK.
	Status *status.Status
}

// EncodeRequest turns a unary gRPC call into the headers and payload of
// a NATS request message, to be sent on a [wire.Subject] with [wire.ProtoGRPC] and Op
// set to req.Method; a streaming call (req.Stream) into the header of its
// first message and its payload when the body crosses whole.
//
// req.Timeout, when set, becomes Mesh-Timeout; when it is zero, a
// "grpc-timeout" metadata entry (gRPC's wire form, "100m") is used instead.
// The outbound pipeline replaces it on each attempt with the time left on
// that attempt's context.
//
// Metadata is copied with these exceptions: pseudo-headers (":authority"),
// "content-type", "te", hop-by-hop HTTP headers and gRPC's transport-level
// keys ("grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
// "grpc-status", "grpc-message", ...) describe one HTTP/2 hop and are dropped;
// all other keys, "user-agent" and other "grpc-*" keys such as
// "grpc-trace-bin" included, cross the mesh. Values of "-bin" keys are
// carried in unpadded base64. NATS trims leading blanks of header values, so
// such blanks in a text value are not preserved (HTTP/2 forbids them anyway,
// RFC 9113 section 8.2.1).
//
// It fails with a *wire.Error: KindBadRequest for a malformed method or metadata
// gRPC could not send either (a key outside [0-9a-z-_.], a text value with
// bytes outside %x20-%x7E), KindHeadersTooLarge past lim's header bounds and
// KindTooLarge past max_payload.
func EncodeRequest(req *Request, lim wire.Limits) (*nats.Msg, error) {
	if !validGRPCMethod(req.Method) {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("bad gRPC method %.64q: want /service/method", req.Method)}
	}
	m := &nats.Msg{Header: make(nats.Header, len(req.Metadata)+2), Data: req.Payload}
	n, size, err := putMetadata(m.Header, req.Metadata, "")
	if err != nil {
		return nil, err
	}
	m.Header[HeaderGRPCMethod] = []string{req.Method}
	if req.Stream {
		m.Header[HeaderGRPCStream] = []string{streamMarker}
	}
	timeout := req.Timeout
	if timeout <= 0 {
		if vs := req.Metadata.Get("grpc-timeout"); len(vs) > 0 {
			timeout, _ = ParseTimeout(vs[0])
		}
	}
	if timeout > 0 {
		wire.SetTimeout(m.Header, timeout)
	}
	if err := lim.Check(m, n, size); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeRequest reads a request message made by [EncodeRequest]. When
// the subject is a mesh subject, its op must name the same method as the
// Mesh-Grpc-Method header (which may then be absent), so that permissions
// granted on subjects cannot be sidestepped by the header. Mesh headers, and
// metadata keys gRPC cannot carry, are not part of the metadata; the key
// [MetadataCaller] is dropped. It fails with KindBadRequest.
func DecodeRequest(m *nats.Msg) (*Request, error) {
	var op string
	if s, err := wire.ParseSubject(m.Subject); err == nil && s.Proto == wire.ProtoGRPC {
		op = s.Op
	}
	return DecodeCall(m.Header, m.Data, op)
}

// DecodeCall is [DecodeRequest] for a message whose subject the
// receiver has parsed already: subjectMethod is the subject's op, or "" when
// it was no mesh gRPC subject.
func DecodeCall(h nats.Header, data []byte, subjectMethod string) (*Request, error) {
	method := h.Get(HeaderGRPCMethod)
	if subjectMethod != "" {
		switch {
		case method == "":
			method = subjectMethod
		case method != subjectMethod:
			return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("%s %.64q does not match the subject's method %.64q", HeaderGRPCMethod, method, subjectMethod)}
		}
	}
	if !validGRPCMethod(method) {
		return nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("missing or bad %s %.64q", HeaderGRPCMethod, method)}
	}
	timeout, err := wire.Timeout(h)
	if err != nil {
		return nil, err
	}
	stream, err := readStreamMarker(h)
	if err != nil {
		return nil, err
	}
	md, _, err := readMetadata(h)
	if err != nil {
		return nil, err
	}
	// The message may come from any NATS client, not only from an
	// EncodeRequest bounded by the listeners' limits: the service gets no
	// more metadata than a listener would have let through (the mesh's
	// header limits), else headers-too-large.
	count, size := 0, 0
	for k, vs := range md {
		for _, v := range vs {
			size += len(k) + len(v) + 4
			count++
		}
	}
	if err := (wire.Limits{MaxPayload: 1 << 62}).Check(&nats.Msg{}, count, size); err != nil {
		return nil, err
	}
	delete(md, MetadataCaller)
	return &Request{Method: method, Metadata: md, Payload: data, Stream: stream, Timeout: timeout}, nil
}

// ResponseMsg is the reply that carries a service's gRPC answer. Metadata
// is copied as in [EncodeRequest], trailers behind "Mesh-Trailer-". The
// status message and details count against lim's header bounds, like
// metadata. Past lim it returns a *wire.Error instead, to be sent with [wire.ErrorMsg].
func ResponseMsg(resp *Response, lim wire.Limits) (*nats.Msg, error) {
	m := &nats.Msg{Header: make(nats.Header, len(resp.Header)+len(resp.Trailer)+3)}
	n, size, err := putMetadata(m.Header, resp.Header, "")
	if err != nil {
		return nil, err
	}
	tn, tsize, err := putMetadata(m.Header, resp.Trailer, wire.HeaderTrailerPrefix)
	if err != nil {
		return nil, err
	}
	n, size = n+tn, size+tsize
	st := resp.Status
	m.Header[HeaderGRPCStatus] = []string{strconv.FormatUint(uint64(st.Code()), 10)}
	if st.Code() == codes.OK {
		m.Data = resp.Payload
	}
	if msg := st.Message(); msg != "" {
		v := encodeGRPCMessage(msg)
		m.Header[HeaderGRPCMessage] = []string{v}
		n, size = n+1, size+len(HeaderGRPCMessage)+len(v)+4
	}
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		b, err := proto.Marshal(p)
		if err != nil {
			return nil, &wire.Error{Kind: wire.KindInternal, Message: "marshaling status details: " + err.Error(), Err: err}
		}
		v := base64.RawStdEncoding.EncodeToString(b)
		m.Header[HeaderGRPCDetails] = []string{v}
		n, size = n+1, size+len(HeaderGRPCDetails)+len(v)+4
	}
	if err := lim.Check(m, n, size); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeResponse reads a reply. A mesh error reply is returned as a *wire.Error
// and no response. A reply with Mesh-Grpc-Status is a service's answer; its
// Status is never nil. A reply without it is a NATS-native answer: a NATS
// "503" status with no payload is [wire.ErrNoResponders]; a nats.go/micro error
// (Nats-Service-Error headers) becomes a status whose code follows gRPC's
// mapping of HTTP statuses (400 Internal, 401 Unauthenticated, 403
// PermissionDenied, 404 Unimplemented, 429/502/503/504 Unavailable, else
// Unknown); anything else is OK with the payload as the response message.
// A malformed reply is a KindInternal error.
func DecodeResponse(m *nats.Msg) (*Response, error) {
	if e := wire.ReplyError(m.Header); e != nil {
		return nil, e
	}
	header, trailer, err := readMetadata(m.Header)
	if err != nil {
		e := wire.FromError(err)
		return nil, &wire.Error{Kind: wire.KindInternal, Message: "malformed gRPC reply: " + e.Message}
	}
	resp := &Response{Header: header, Trailer: trailer}
	code := m.Header.Get(HeaderGRPCStatus)
	switch {
	case code != "":
		c, err := strconv.ParseUint(code, 10, 32)
		if err != nil {
			return nil, &wire.Error{Kind: wire.KindInternal, Message: fmt.Sprintf("malformed gRPC reply: bad %s %.16q", HeaderGRPCStatus, code)}
		}
		p := &spb.Status{Code: int32(c), Message: decodeGRPCMessage(m.Header.Get(HeaderGRPCMessage))}
		if d := m.Header.Get(HeaderGRPCDetails); d != "" {
			b, err := decodeBinValue(d)
			var dp spb.Status
			if err == nil {
				err = proto.Unmarshal(b, &dp)
			}
			if err != nil {
				return nil, &wire.Error{Kind: wire.KindInternal, Message: "malformed gRPC reply: bad " + HeaderGRPCDetails + ": " + err.Error()}
			}
			p.Details = dp.Details
		}
		resp.Status = status.FromProto(p)
	case m.Header.Get("Status") == "503" && len(m.Data) == 0:
		return nil, &wire.Error{Kind: wire.KindNoResponders, Message: "no responders"}
	case m.Header.Get(micro.ErrorHeader) != "" || m.Header.Get(micro.ErrorCodeHeader) != "":
		resp.Status = status.New(wire.MicroGRPCCode(m.Header.Get(micro.ErrorCodeHeader)), m.Header.Get(micro.ErrorHeader))
	default:
		resp.Status = status.New(codes.OK, "")
	}
	if resp.Status.Code() == codes.OK {
		resp.Payload = m.Data
	}
	return resp, nil
}

// StatusMessage is the status message of the gRPC answer whose reply
// header is h, as [DecodeResponse] reads it: Mesh-Grpc-Message decoded, or,
// for a NATS-native answer (no Mesh-Grpc-Status), a nats.go/micro error's
// description; "" for none.
func StatusMessage(h nats.Header) string {
	if h.Get(HeaderGRPCStatus) != "" {
		return decodeGRPCMessage(h.Get(HeaderGRPCMessage))
	}
	return h.Get(micro.ErrorHeader)
}

// ErrorInfoDomain is the domain of the errdetails.ErrorInfo that [Status]
// attaches to a mesh error; its Reason is the error's [wire.Kind].
const ErrorInfoDomain = "natsmesh.io"

// Status is the status a gRPC client sees for err:
//   - nil: nil (which reads as OK);
//   - a mesh *wire.Error in err's chain: its [wire.Error.GRPCCode], its text as the
//     message, and details telling it apart from a service's own status: an
//     errdetails.ErrorInfo with Domain [ErrorInfoDomain] and the kind as
//     Reason, and an errdetails.RetryInfo when RetryAfter is set;
//   - a status error (anything with a GRPCStatus method): that status;
//   - context.DeadlineExceeded and context.Canceled: DeadlineExceeded and
//     Canceled;
//   - the failures of a NATS request [wire.FromError] knows: the code of their kind;
//   - anything else: Unknown with err's text.
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	var me *wire.Error
	if errors.As(err, &me) {
		return meshStatus(me)
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err)
	}
	if me := wire.FromError(err); me.Kind != wire.KindInternal {
		return meshStatus(me)
	}
	return status.New(codes.Unknown, err.Error())
}

// StatusKind returns the kind of mesh error a gRPC status carries (see
// [Status]), or "" for a service's own status.
func StatusKind(st *status.Status) wire.Kind {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Domain == ErrorInfoDomain {
			return wire.Kind(ei.Reason)
		}
	}
	return ""
}

func meshStatus(e *wire.Error) *status.Status {
	st := status.New(e.GRPCCode(), e.Error())
	info := &errdetails.ErrorInfo{Reason: string(e.Kind), Domain: ErrorInfoDomain}
	var with *status.Status
	var err error
	if e.RetryAfter > 0 {
		with, err = st.WithDetails(info, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	} else {
		with, err = st.WithDetails(info)
	}
	if err != nil {
		return st
	}
	return with
}

// validGRPCMethod reports whether m is "/service/method" with both parts
// non-empty and every byte printable ASCII other than space.
func validGRPCMethod(m string) bool {
	if len(m) < 4 || len(m) > maxMethodLen || m[0] != '/' {
		return false
	}
	slash := strings.IndexByte(m[1:], '/') + 1
	if slash < 2 || slash == len(m)-1 || strings.IndexByte(m[slash+1:], '/') >= 0 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] <= ' ' || m[i] >= 0x7f {
			return false
		}
	}
	return true
}

// SplitMethod splits a valid full method into service and method.
func SplitMethod(m string) (service, method string) {
	m = strings.TrimPrefix(m, "/")
	i := strings.LastIndexByte(m, '/')
	if i < 0 {
		return "", m
	}
	return m[:i], m[i+1:]
}

// droppedMetadata are the metadata keys that describe one HTTP/2 hop or the
// gRPC transport, not the call; they never cross the mesh. grpc-timeout is
// turned into Mesh-Timeout; grpc-status, grpc-message and
// grpc-status-details-bin travel as the status headers.
var droppedMetadata = map[string]bool{
	"content-type":               true,
	"te":                         true,
	"host":                       true,
	"connection":                 true,
	"keep-alive":                 true,
	"proxy-connection":           true,
	"transfer-encoding":          true,
	"upgrade":                    true,
	"trailer":                    true,
	"grpc-timeout":               true,
	"grpc-encoding":              true,
	"grpc-accept-encoding":       true,
	"grpc-message-type":          true,
	"grpc-status":                true,
	"grpc-message":               true,
	"grpc-status-details-bin":    true,
	"grpc-previous-rpc-attempts": true,
	"grpc-retry-pushback-ms":     true,
}

func dropMetadataKey(k string) bool {
	return k == "" || k[0] == ':' || droppedMetadata[k]
}

// validMetadataKey reports whether k is a gRPC metadata key: [0-9a-z-_.].
func validMetadataKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// putMetadata copies md into h under escaped names behind prefix, and returns
// how many values and bytes it copied.
func putMetadata(h nats.Header, md metadata.MD, prefix string) (count, size int, err error) {
	for k, vs := range md {
		k = strings.ToLower(k)
		if dropMetadataKey(k) {
			continue
		}
		if !validMetadataKey(k) {
			return 0, 0, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("metadata key %.64q: want [0-9a-z-_.]", k)}
		}
		name := prefix + wire.EscapeHeaderName(k)
		bin := strings.HasSuffix(k, "-bin")
		for _, v := range vs {
			if bin {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			} else if !printableASCII(v) {
				return 0, 0, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("metadata %q has a value with bytes outside %%x20-%%x7E; use a -bin key for binary values", k)}
			}
			h[name] = append(h[name], v)
			count++
			size += len(k) + len(v) + 4
		}
	}
	return count, size, nil
}

// readMetadata splits the metadata and trailer metadata out of a NATS header.
// Mesh headers, dropped keys and names that are no metadata keys even when
// lowered are skipped, and so are text values gRPC could not send. A "-bin"
// value that is not base64 fails with KindBadRequest.
func readMetadata(h nats.Header) (md, trailer metadata.MD, err error) {
	for k, vs := range h {
		dst := &md
		if strings.HasPrefix(k, wire.HeaderTrailerPrefix) {
			k, dst = k[len(wire.HeaderTrailerPrefix):], &trailer
		}
		name, ok := wire.UnescapeHeaderName(k)
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		if dropMetadataKey(name) || !validMetadataKey(name) {
			continue
		}
		bin := strings.HasSuffix(name, "-bin")
		for _, v := range vs {
			if bin {
				b, err := decodeBinValue(v)
				if err != nil {
					return nil, nil, &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("metadata %q: bad base64 value", name)}
				}
				v = string(b)
			} else if !printableASCII(v) {
				continue
			}
			if *dst == nil {
				*dst = make(metadata.MD)
			}
			(*dst)[name] = append((*dst)[name], v)
		}
	}
	return md, trailer, nil
}

// decodeBinValue decodes base64 with or without padding, as gRPC does for
// "-bin" headers.
func decodeBinValue(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// encodeGRPCMessage percent-encodes a status message as gRPC encodes
// grpc-message, and also a leading space, which NATS would trim.
func encodeGRPCMessage(msg string) string {
	need := false
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' || (i == 0 && c == ' ') {
			need = true
			break
		}
	}
	if !need {
		return msg
	}
	var b strings.Builder
	b.Grow(len(msg) + 8)
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' || (i == 0 && c == ' ') {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xF])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// decodeGRPCMessage reverses encodeGRPCMessage, keeping malformed escapes as
// they are (like gRPC).
func decodeGRPCMessage(v string) string {
	if strings.IndexByte(v, '%') < 0 {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if hi, lo := unhexFold(v[i+1]), unhexFold(v[i+2]); hi >= 0 && lo >= 0 {
				b = append(b, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		b = append(b, v[i])
	}
	return string(b)
}

func unhexFold(c byte) int {
	if c >= 'a' && c <= 'f' {
		return int(c-'a') + 10
	}
	return wire.Unhex(c)
}

// ParseTimeout reads gRPC's grpc-timeout value: up to 8 digits and a
// unit (H, M, S, m, u, n).
func ParseTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	v, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil || v == 0 {
		return 0, false
	}
	d := time.Duration(v) * unit
	if d > wire.MaxTimeout || d/unit != time.Duration(v) {
		d = wire.MaxTimeout
	}
	return d, true
}

const hexDigits = "0123456789ABCDEF"
