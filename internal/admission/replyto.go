package admission

import (
	"log/slog"
	"strings"

	"github.com/natsmesh/natsmesh/internal/logevery"
	"github.com/natsmesh/natsmesh/wire"
)

// ReplyAllowed reports whether reply may be answered for a call on
// subject: it must lie in the pair inbox of the caller and the service the
// subject names, under wire.PairInbox(caller, service) + ".", the only
// reply subjects the callee's user may publish to for that caller
// (docs/security.md, "The reply model"). A call that crossed accounts
// keeps its reply subject (the accounts exchange streams, not services),
// so nats-server's "_R_." replies of a service import are refused too.
//
// Any other reply subject ($JS.API.STREAM.CREATE.X, another service's call
// subjects, another caller's inbox, the caller's replies from another
// service) would make the agent publish its service's answer there: a
// confused deputy, which the broker's permissions would refuse anyway; a
// clear refusal here is better than a permissions violation. A reply with
// wildcards, whitespace or empty tokens is refused too.
func ReplyAllowed(subject, reply string) bool {
	if !wire.LiteralSubject(reply) {
		return false
	}
	service, caller := callTokens(subject)
	if caller == "" {
		return false
	}
	// _INBOX_mesh.<caller>.<service>.<at least one more token>, without
	// building the prefix: this runs for every inbound call.
	rest, ok := strings.CutPrefix(reply, inboxRoot)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, caller); !ok || !strings.HasPrefix(rest, ".") {
		return false
	}
	if rest, ok = strings.CutPrefix(rest[1:], service); !ok || !strings.HasPrefix(rest, ".") {
		return false
	}
	return len(rest) > 1
}

// inboxRoot is what every mesh inbox starts with, "_INBOX_mesh.".
var inboxRoot = wire.InboxPrefix("")

// callTokens returns the service and caller tokens of a mesh subject
// (mesh.<service>.<subset>.<caller>.<proto>.<op>, or mesh-inst.<service>.
// <instance>.<caller>...), or "", "" when subject
// is not one or either token is not a valid name.
func callTokens(subject string) (service, caller string) {
	rest, ok := strings.CutPrefix(subject, wire.Prefix+".")
	if !ok {
		if rest, ok = strings.CutPrefix(subject, wire.InstancePrefix+"."); !ok {
			return "", ""
		}
	}
	var toks [3]string // service, subset, caller
	for i := range toks {
		var found bool
		toks[i], rest, found = strings.Cut(rest, ".")
		if !found {
			return "", ""
		}
	}
	if wire.ValidateName("service", toks[0]) != nil || wire.ValidateName("caller", toks[2]) != nil {
		return "", ""
	}
	return toks[0], toks[2]
}

// Refusals logs refused reply subjects at most once a second, with the
// number refused since the last line, so a flood of forged requests
// cannot flood the log. The zero value logs nothing: set Log.
type Refusals struct {
	Log     *slog.Logger
	limiter logevery.Limiter
}

// Refused logs (at most once a second) a call on subject refused for its
// reply subject.
func (r *Refusals) Refused(subject, reply string) {
	if n, ok := r.limiter.Allow(); ok && r.Log != nil {
		r.Log.Warn("pipeline: refused a call whose reply subject is not in the pair inbox of its caller and service (nothing published)",
			"subject", subject, "reply", reply, "refused_since_last_log", n)
	}
}
