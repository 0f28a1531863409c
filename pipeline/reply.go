package pipeline

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/natsmesh/natsmesh/wire"
)

// ReplyAllowed reports whether reply may be answered for a call on
// subject: it must lie under the inbox prefix of the caller the subject
// names (wire.InboxPrefix(caller) + "."), or be a reply subject the broker
// made for a request that crossed accounts through a service import
// ("_R_.<6>.<6>", with ".<server hash>.T" when latency is tracked), which
// the broker maps back to the caller's inbox in its own account.
//
// Any other reply subject ($JS.API.STREAM.CREATE.X, another service's call
// subjects, another caller's inbox) would make the agent publish its
// service's answer there with the agent's own permissions: a confused
// deputy. A reply with wildcards, whitespace or empty tokens is refused
// too.
func ReplyAllowed(subject, reply string) bool {
	if !literalSubject(reply) {
		return false
	}
	if caller := callerToken(subject); caller != "" {
		prefix := wire.InboxPrefix(caller)
		if len(reply) > len(prefix)+1 && strings.HasPrefix(reply, prefix) && reply[len(prefix)] == '.' {
			return true
		}
	}
	return serviceImportReply(reply)
}

// callerToken returns the caller token of a mesh subject
// (mesh.<service>.<subset>.<caller>.<proto>.<op>), or "" when subject is
// not one or the token is not a valid name.
func callerToken(subject string) string {
	rest, ok := strings.CutPrefix(subject, wire.Prefix+".")
	if !ok {
		return ""
	}
	var tok string
	for range 3 { // service, subset, caller
		var found bool
		tok, rest, found = strings.Cut(rest, ".")
		if !found {
			return ""
		}
	}
	if wire.ValidateName("caller", tok) != nil {
		return ""
	}
	return tok
}

// serviceImportReply reports whether reply has the form of nats-server's
// service import response subjects: "_R_." + 6 base62 characters (the
// account's response prefix) + "." + 6 base62 characters, optionally
// followed by "." + the server's hash + ".T" (see newServiceReply in
// nats-server's accounts.go).
func serviceImportReply(reply string) bool {
	rest, ok := strings.CutPrefix(reply, "_R_.")
	if !ok {
		return false
	}
	toks := strings.Split(rest, ".")
	switch {
	case len(toks) == 2:
	case len(toks) == 4 && toks[3] == "T" && len(toks[2]) >= 1 && len(toks[2]) <= 16 && base62(toks[2]):
	default:
		return false
	}
	return len(toks[0]) == 6 && len(toks[1]) == 6 && base62(toks[0]) && base62(toks[1])
}

func base62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// literalSubject reports whether s is a subject a message may be published
// to: non-empty tokens, no wildcards, no whitespace or control bytes.
func literalSubject(s string) bool {
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

// refusedReplies logs refused reply subjects at most once per interval,
// with the number refused since the last line, so a flood of forged
// requests cannot flood the log.
type refusedReplies struct {
	log      *slog.Logger
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *refusedReplies) refused(subject, reply string) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	r.log.Warn("pipeline: refused a call whose reply subject is not the caller's inbox (nothing published)",
		"subject", subject, "reply", reply, "refused_since_last_log", n)
}
