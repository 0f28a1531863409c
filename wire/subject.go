package wire

import (
	"fmt"
	"strings"
)

// Prefix is the first token of every mesh subject sent to a queue group.
const Prefix = "mesh"

// InstancePrefix is the first token of a call addressed to one instance
// ("mesh-inst.orders.<instance>.web.http.GET"): a caller that heard nothing
// of a call within its take bound sends it again to an instance a census
// found live (docs/wire.md, "Liveness"), not to the queue group, which
// could draw the silent instance again. Its third token is the instance's
// ID in place of the subset. A separate first token, not a form of the
// subset token, so the broker's permissions can let an instance subscribe
// its service's instance subjects without letting it subscribe the
// service's queue subjects outside their queue groups.
const InstancePrefix = "mesh-inst"

// IsCallSubject reports whether subject is in either tree of mesh call
// subjects (Prefix or InstancePrefix): a subject nothing but a call may be
// published to, and no answer (discovery's, a deputy's) ever.
func IsCallSubject(subject string) bool {
	return strings.HasPrefix(subject, Prefix+".") || strings.HasPrefix(subject, InstancePrefix+".")
}

// LiteralSubject reports whether s is a subject a message may be
// published to: non-empty tokens, no wildcards, no whitespace or control
// bytes. What a receiver checks of a reply subject a sender chose.
func LiteralSubject(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// maxInstanceLen bounds an instance ID (a NUID is 22 characters).
const maxInstanceLen = 64

// ValidInstance reports whether id may name an instance in a subject: 1 to
// 64 characters from [A-Za-z0-9] (a NUID, as the agent's discovery ID is).
func ValidInstance(id string) bool {
	if id == "" || len(id) > maxInstanceLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// InstanceSubject is what the instance id of service subscribes, in the
// service's queue group, to receive the calls addressed to it: it is the
// only subscriber of its own ID's subject, and the group keeps a holder
// of the service's key who subscribes it too from taking a copy of the
// calls (it takes a share, as in the queue groups).
func InstanceSubject(service, id string) string {
	return InstancePrefix + "." + service + "." + id + ".>"
}

// ToInstance returns the call subject subject (mesh.<service>.<subset>...)
// addressed to instance id of the service instead, and false when subject
// is not a queue-group call subject or id not a valid instance ID.
func ToInstance(subject, id string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, Prefix+".")
	if !ok || !ValidInstance(id) {
		return "", false
	}
	service, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, ".") // the subset
	if !ok {
		return "", false
	}
	return InstancePrefix + "." + service + "." + id + "." + rest, true
}

// AnySubset is the subset token of a subject that any instance of a
// service answers ("mesh.orders._.web.http.GET"). It is the wire's
// spelling only: in memory (a [Subject]'s or a pipeline.Call's Subset, the
// subset an agent or a route is configured with) any subset is "", so code
// that reads a subset compares it with "" alone. [Subject.String] and
// [ServiceSubjects] write "" as AnySubset, [ParseSubject] reads AnySubset
// back as "", and [NormalSubset] is the one conversion of a subset a user
// wrote (who may spell it either way), at the mesh's entry points.
const AnySubset = "_"

// NormalSubset is subset as it is kept in memory: "" for any subset,
// whether written "" or [AnySubset]; any other subset as it is.
func NormalSubset(subset string) string {
	if subset == AnySubset {
		return ""
	}
	return subset
}

// Proto is the protocol token of a subject: how the message body and headers
// are to be read.
type Proto string

const (
	ProtoHTTP Proto = "http"
	ProtoGRPC Proto = "grpc"
)

// maxNameLen bounds service, subset and caller names, like a DNS label.
const maxNameLen = 63

// Subject names one call: who is called (service and subset), who calls, in
// which protocol, and the operation (the HTTP method, or the full gRPC method
// name). Its string form has exactly six tokens:
//
//	mesh.<service>.<subset>.<caller>.<proto>.<op>
//
// Service, subset and caller are names from [a-z0-9-] and are validated, not
// escaped, so that permissions can be written on them. Op comes from outside
// input and is escaped by [EscapeToken].
type Subject struct {
	Service string
	// Instance, when set, addresses the call to that instance of the
	// service (InstancePrefix's tree; Subset is then ""): see
	// [InstancePrefix].
	Instance string
	// Subset selects instances: "" means any instance (AnySubset, as a
	// user may write it, is accepted too: see [AnySubset]), a label such as
	// "v2" means the instances of that subset only.
	Subset string
	Caller string
	Proto  Proto
	Op     string
}

// String returns the NATS subject. It does not validate: use [Subject.Validate]
// (or build subjects only from validated names) first.
func (s Subject) String() string {
	prefix, subset := Prefix, s.Subset
	if subset == "" {
		subset = AnySubset
	}
	if s.Instance != "" {
		prefix, subset = InstancePrefix, s.Instance
	}
	var b strings.Builder
	b.Grow(len(prefix) + len(s.Service) + len(subset) + len(s.Caller) + len(s.Proto) + len(s.Op) + 8)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(s.Service)
	b.WriteByte('.')
	b.WriteString(subset)
	b.WriteByte('.')
	b.WriteString(s.Caller)
	b.WriteByte('.')
	b.WriteString(string(s.Proto))
	b.WriteByte('.')
	appendEscaped(&b, s.Op)
	return b.String()
}

// Validate reports whether every name in s is valid and the protocol known.
func (s Subject) Validate() error {
	if err := ValidateName("service", s.Service); err != nil {
		return err
	}
	if subset := NormalSubset(s.Subset); subset != "" {
		if err := ValidateName("subset", subset); err != nil {
			return err
		}
		if s.Instance != "" {
			return fmt.Errorf("wire: a call to instance %q names subset %q too: %w", s.Instance, subset, ErrInvalidName)
		}
	}
	if s.Instance != "" && !ValidInstance(s.Instance) {
		return fmt.Errorf("wire: instance ID %.70q: want 1 to %d characters from [A-Za-z0-9]: %w", s.Instance, maxInstanceLen, ErrInvalidName)
	}
	if err := ValidateName("caller", s.Caller); err != nil {
		return err
	}
	if s.Proto != ProtoHTTP && s.Proto != ProtoGRPC {
		return fmt.Errorf("wire: unknown protocol %q: %w", s.Proto, ErrInvalidName)
	}
	return nil
}

// ParseSubject reads a subject made by [Subject.String], validating every
// token and unescaping the operation. The any-subset token reads as
// Subset "" (see [AnySubset]); a subject of InstancePrefix's tree reads
// its third token as the Instance.
func ParseSubject(subject string) (Subject, error) {
	// Split into a fixed array: every inbound call is parsed here, and
	// strings.Split would allocate a slice each time. Exactly five dots make
	// six tokens.
	var tokens [6]string
	rest, ok := subject, true
	for i := range len(tokens) - 1 {
		var found bool
		tokens[i], rest, found = strings.Cut(rest, ".")
		ok = ok && found
	}
	tokens[5] = rest
	if !ok || strings.Contains(rest, ".") || tokens[0] != Prefix && tokens[0] != InstancePrefix {
		return Subject{}, fmt.Errorf("wire: subject %q is not mesh.<service>.<subset>.<caller>.<proto>.<op>: %w", subject, ErrInvalidName)
	}
	for _, tok := range tokens[1:5] {
		if tok == "" {
			// An empty subset would read as AnySubset and print back as "_",
			// so two subjects would name one call.
			return Subject{}, fmt.Errorf("wire: subject %q has an empty token: %w", subject, ErrInvalidName)
		}
	}
	op, err := UnescapeToken(tokens[5])
	if err != nil {
		return Subject{}, err
	}
	s := Subject{Service: tokens[1], Subset: NormalSubset(tokens[2]), Caller: tokens[3], Proto: Proto(tokens[4]), Op: op}
	if tokens[0] == InstancePrefix {
		s.Subset, s.Instance = "", tokens[2]
	}
	if err := s.Validate(); err != nil {
		return Subject{}, err
	}
	return s, nil
}

// SubjectOp returns the protocol and operation of a mesh subject without
// validating its names: what a decoder needs to check its method header
// against the subject, on a path where the receiver has already parsed (or
// the broker has routed on) the rest. ok is false when subject is not a
// six-token mesh subject or its operation token is not validly escaped.
func SubjectOp(subject string) (proto Proto, op string, ok bool) {
	if !IsCallSubject(subject) || strings.Count(subject, ".") != 5 {
		return "", "", false
	}
	i := strings.LastIndexByte(subject, '.')
	j := strings.LastIndexByte(subject[:i], '.')
	op, err := UnescapeToken(subject[i+1:])
	if err != nil {
		return "", "", false
	}
	return Proto(subject[j+1 : i]), op, true
}

// ValidateName checks a service, subset or caller name: 1 to 63 characters
// from [a-z0-9-], starting and ending with a letter or digit (a DNS label, so
// the same name works as a host name in front of the outbound proxy).
//
// Its errors wrap ErrInvalidName and name the kind and the value without a
// package prefix ("service name "Orders": ..."), since they are always
// wrapped by the context that read the name.
func ValidateName(kind, name string) error {
	if isName(name) {
		return nil
	}
	if name == "" {
		return fmt.Errorf("empty %s name: %w", kind, ErrInvalidName)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%s name %.20q... longer than %d characters: %w", kind, name, maxNameLen, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		case c >= 'A' && c <= 'Z':
			if lower := strings.ToLower(name); ValidateName(kind, lower) == nil {
				return fmt.Errorf("%s name %q: names are lower case: use %q: %w", kind, name, lower, ErrInvalidName)
			}
			fallthrough
		default:
			return fmt.Errorf("%s name %q: want [a-z0-9-], starting and ending with a letter or digit: %w", kind, name, ErrInvalidName)
		}
	}
	return nil
}

// isName reports whether ValidateName accepts name, without making the
// error that says why not (the proxy asks for every host).
func isName(name string) bool {
	if name == "" || len(name) > maxNameLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ServiceSubjects returns what an instance of service in subset subscribes
// to, with the queue group of each: every instance answers the any-subset
// subject in the service's queue group, and an instance with a subset also
// answers that subset's subject in the subset's own group. Each queue group
// gets one copy of a message, and a message is published to exactly one of
// the two subjects, so every call is delivered to exactly one instance.
func ServiceSubjects(service, subset string) (subjects, queues []string) {
	subjects = []string{Prefix + "." + service + "." + AnySubset + ".>"}
	queues = []string{service}
	if subset = NormalSubset(subset); subset != "" {
		subjects = append(subjects, Prefix+"."+service+"."+subset+".>")
		queues = append(queues, service+"."+subset)
	}
	return subjects, queues
}

// InboxPrefix is the reply inbox prefix of caller (for
// nats.CustomInboxPrefix). Only caller's NATS user may subscribe to it, so no
// other service can read its replies.
func InboxPrefix(caller string) string {
	return inboxRoot + caller
}

// inboxRoot is what every mesh inbox prefix begins with.
const inboxRoot = "_INBOX_mesh."

// Reserved peers of a pair inbox (see PairInbox). Service and caller names
// are lower case, so these never name one.
const (
	// PeerSRV is the peer of discovery answers: any service may publish to
	// PairInbox(requester, PeerSRV) for the requesters the mesh allows
	// (the admin and the bridge).
	PeerSRV = "SRV"
	// PeerJS is the peer of JetStream's answers (the policy store's direct
	// get), which reach a service account through the store's export.
	PeerJS = "JS"
	// PeerNATS is the peer of a call to a NATS-native responder (a
	// gateway route to a plain subject, "nats:SUBJECT"), which is no mesh
	// service: the caller's reply subject is under
	// PairInbox(caller, PeerNATS). A hand-written permission for such a
	// responder grants it publish on PairInbox(caller, PeerNATS)+".>" for
	// each caller it answers.
	PeerNATS = "NATS"
)

// PairInbox is the inbox prefix that owner subscribes to and only peer may
// publish to: "_INBOX_mesh.<owner>.<peer>". A caller's reply subject for a
// call to service S is under PairInbox(caller, S); a stream's messages from
// the caller to the callee instance are under PairInbox(S, caller). The
// broker's generated permissions give peer the right to publish there and
// nobody else (docs/security.md, "The reply model").
func PairInbox(owner, peer string) string { return InboxPrefix(owner) + "." + peer }

// CutPairInbox reports whether subject is under PairInbox(owner, peer)
// (the pair inbox, then a dot) and returns what follows it, without
// building the pair inbox's string: the stream protocol checks the
// callee's inbox of every call it opens.
func CutPairInbox(subject, owner, peer string) (rest string, ok bool) {
	rest, ok = strings.CutPrefix(subject, inboxRoot)
	if ok {
		rest, ok = strings.CutPrefix(rest, owner)
	}
	if ok && len(rest) > 0 && rest[0] == '.' {
		rest, ok = strings.CutPrefix(rest[1:], peer)
	} else {
		ok = false
	}
	if ok && len(rest) > 0 && rest[0] == '.' {
		return rest[1:], true
	}
	return "", false
}

const hexDigits = "0123456789ABCDEF"

// EscapeToken maps any string to one NATS subject token: bytes in
// [A-Za-z0-9_-] stay as they are, every other byte becomes %XX (upper-case
// hex), and the empty string becomes a lone "%". The result never contains a
// dot, a wildcard, '$', whitespace or a control byte, and it is never empty,
// so a subject built from escaped tokens keeps its token count.
func EscapeToken(s string) string {
	var b strings.Builder
	appendEscaped(&b, s)
	return b.String()
}

func appendEscaped(b *strings.Builder, s string) {
	if s == "" {
		b.WriteByte('%')
		return
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
}

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// UnescapeToken reverses [EscapeToken]. It accepts only the exact form
// EscapeToken produces (upper-case hex, no escaped safe bytes), so every
// string has one token and every token one string.
func UnescapeToken(tok string) (string, error) {
	if tok == "%" {
		return "", nil
	}
	if tok == "" {
		return "", fmt.Errorf("wire: empty subject token: %w", ErrInvalidName)
	}
	n := 0
	for i := 0; i < len(tok); i++ {
		if tok[i] == '%' {
			n++
		}
	}
	if n == 0 {
		for i := 0; i < len(tok); i++ {
			if !tokenSafe(tok[i]) {
				return "", fmt.Errorf("wire: subject token %q has unescaped byte %q: %w", tok, tok[i], ErrInvalidName)
			}
		}
		return tok, nil
	}
	// Every well-formed escape is three bytes; a malformed token ("%%") can
	// have more '%' than that allows, so bound the capacity below by zero.
	out := make([]byte, 0, max(len(tok)-2*n, 0))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '%' {
			if !tokenSafe(c) {
				return "", fmt.Errorf("wire: subject token %q has unescaped byte %q: %w", tok, c, ErrInvalidName)
			}
			out = append(out, c)
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("wire: subject token %q has a truncated escape: %w", tok, ErrInvalidName)
		}
		hi, lo := Unhex(tok[i+1]), Unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("wire: subject token %q has a bad escape: %w", tok, ErrInvalidName)
		}
		v := byte(hi<<4 | lo)
		if tokenSafe(v) {
			return "", fmt.Errorf("wire: subject token %q escapes a safe byte: %w", tok, ErrInvalidName)
		}
		out = append(out, v)
		i += 2
	}
	return string(out), nil
}

// Unhex is the value of an upper-case hex digit, or -1 for any other
// byte.
func Unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
