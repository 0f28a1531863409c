package accounts

import (
	"fmt"
	"slices"
	"strings"

	"github.com/natsmesh/natsmesh/wire"
)

// ErrInvariant is wrapped by every error CheckUsers returns (and so Users
// and Generate, for which it also wraps ErrSpec): the permissions break
// the reply model of docs/security.md.
var ErrInvariant = fmt.Errorf("permissions break the reply model: %w", ErrSpec)

// forbidden are the subject spaces no service or bridge may publish into,
// whatever else it may: JetStream's API and internals (but for the direct
// get of the policies bucket), the KV and object stores' subjects, the
// system account's, the "_R_" replies of service imports and nats.go's
// default inboxes.
var forbidden = []string{"$JS.>", "$JSC.>", "$NRG.>", "$KV.>", "$OBJ.>", "$SYS.>", "_R_.>", "_INBOX.>"}

// CheckUsers checks the invariants of the reply model over users (what
// Users returns, or a list built by hand):
//
//   - a user with response permissions may not subscribe any subject that
//     a user may publish: itself (a message it sends itself, with a reply
//     subject of its choosing, would grant it a publish there), or any
//     other user outside the system account, of its own account or of
//     another one (the same message, sent by the other). Exports carry
//     messages under the same subject; CheckUsers does not see which
//     account exports what to whom, so it takes every other account to
//     reach the user's. That is stricter than needed, never laxer;
//   - services and the bridge (every user outside StoreAccount and
//     SystemAccount) have no response permissions, and each subject they
//     may publish is within their own calls (mesh.*.*.<self>.>, and
//     mesh-inst.*.*.<self>.> addressed to one instance), their census of
//     a callee's instances ($SRV.STATUS.*.<self>), their
//     pairs in others' inboxes (_INBOX_mesh.*.<self>.>), the discovery
//     answers' inboxes of the admin and the bridge
//     (_INBOX_mesh.<admin|bridge>.SRV.>), their own sibling subject
//     ($SRV.STATUS.<self>; and for the bridge $SRV.PING|INFO|STATS) and
//     the direct get of the policies bucket. In particular none reaches
//     $JS (but that direct get), $KV, $SYS, "_R_" or "_INBOX.";
//   - each subject a service or the bridge may subscribe is within its
//     own calls in exactly its own queue groups (mesh.<self>._.> in group
//     <self>, mesh.<self>.<v>.> in group <self>.<v> for a subset token v),
//     the calls addressed to its own instances (mesh-inst.<self>.> in
//     group <self> only: an instance subscribes its own ID's), its own inbox
//     (_INBOX_mesh.<self>.>), discovery as itself
//     ($SRV.PING|INFO|STATS, $SRV.*.<self>, $SRV.*.<self>.*, which hold
//     its sibling subject $SRV.STATUS.<self>) and the policies bucket's
//     writes ($KV.natsmesh-policies.>). So none reads another's calls or
//     replies, joins another's queue group, or takes a plain copy of its
//     own calls (a call subject without a queue group). Which subsets v
//     exist is the mesh file's: CheckUsers sees users only, and Users
//     grants the declared ones;
//   - only the system account's users are unrestricted.
//
// The users of StoreAccount are taken to be the admins. Errors name the
// user and the subject, and wrap ErrInvariant.
func CheckUsers(users []User) error {
	answers := []string{wire.PairInbox(Bridge, wire.PeerSRV) + ".>"}
	for _, u := range users {
		if u.Account == StoreAccount {
			answers = append(answers, wire.PairInbox(u.Name, wire.PeerSRV)+".>")
		}
	}
	for _, u := range users {
		p := u.Perms
		if p == nil {
			if u.Account != SystemAccount {
				return invariantErr(u, "is unrestricted, outside the system account")
			}
			continue
		}
		if p.Responses != nil {
			if err := checkResponses(u, users); err != nil {
				return err
			}
		}
		if u.Account == StoreAccount || u.Account == SystemAccount {
			continue
		}
		if p.Responses != nil {
			return invariantErr(u, "has response permissions: it would publish to reply subjects its senders choose")
		}
		allowed := append([]string{
			wire.Prefix + ".*.*." + u.Name + ".>",
			wire.InstancePrefix + ".*.*." + u.Name + ".>",
			"$SRV.STATUS.*." + u.Name,
			wire.InboxPrefix("*") + "." + u.Name + ".>",
			"$SRV.STATUS." + u.Name,
			directGet,
		}, answers...)
		if u.Name == Bridge {
			allowed = append(allowed, "$SRV.PING", "$SRV.INFO", "$SRV.STATS")
		}
		for _, pub := range p.Publish {
			for _, f := range forbidden {
				if intersects(pub, f) && !subsetOf(pub, directGet) {
					return invariantErr(u, "may publish %q, which reaches %q", pub, f)
				}
			}
			if !slices.ContainsFunc(allowed, func(a string) bool { return subsetOf(pub, a) }) {
				return invariantErr(u, "may publish %q, outside its own calls, its pair inboxes, discovery answers, its sibling subject and the policies' direct get", pub)
			}
		}
		for _, sub := range p.Subscribe {
			if !maySubscribe(u.Name, sub) {
				return invariantErr(u, "may subscribe %q, outside its own calls in its own queue groups, its inbox, discovery as itself and the policies' writes", sub)
			}
		}
	}
	return nil
}

// checkResponses checks u, which has response permissions, against every
// user that may publish into a subject u subscribes (see CheckUsers).
func checkResponses(u User, users []User) error {
	for _, pub := range u.Perms.Publish {
		for _, sub := range u.Perms.Subscribe {
			if intersects(pub, subjectOf(sub)) {
				return invariantErr(u, "has response permissions and may both publish %q and subscribe %q: a message it sends itself would grant it any reply subject", pub, sub)
			}
		}
	}
	for _, o := range users {
		if o.Name == u.Name && o.Account == u.Account || o.Account == SystemAccount || o.Perms == nil {
			continue // itself (above), the system account, an unrestricted user (an error of its own)
		}
		for _, pub := range o.Perms.Publish {
			for _, sub := range u.Perms.Subscribe {
				if intersects(pub, subjectOf(sub)) {
					return invariantErr(u, "has response permissions and subscribes %q, which %q (account %s) may publish %q into: "+
						"a message it sends there, with a reply subject of its choosing, would grant %q a publish there", sub, o.Name, o.Account, pub, u.Name)
				}
			}
		}
	}
	return nil
}

// maySubscribe reports whether the service or bridge name may hold the
// subscribe permission entry ("subject" or "subject queue"; see
// CheckUsers).
func maySubscribe(name, entry string) bool {
	subject, queue, queued := strings.Cut(entry, " ")
	if toks := strings.Split(subject, "."); toks[0] == wire.InstancePrefix {
		// The calls addressed to its own instances, in its own queue
		// group: a share, never a copy.
		return queued && queue == name && subsetOf(subject, wire.InstancePrefix+"."+name+".>")
	} else if toks[0] == wire.Prefix {
		// A call subject: its own, of one subset token, in that subset's
		// queue group and no other.
		if len(toks) < 3 || toks[2] == "*" || toks[2] == ">" {
			return false
		}
		group := name
		if toks[2] != wire.AnySubset {
			group += "." + toks[2]
		}
		return queued && queue == group && subsetOf(subject, wire.Prefix+"."+name+"."+toks[2]+".>")
	}
	// A queue group elsewhere only narrows the subscription.
	allowed := append([]string{wire.InboxPrefix(name) + ".>", "$SRV.STATUS." + name, kvSubjects}, discovery(name)...)
	return slices.ContainsFunc(allowed, func(a string) bool { return subsetOf(subject, a) })
}

func invariantErr(u User, format string, v ...any) error {
	return fmt.Errorf("accounts: user %q (account %s) %s: %w", u.Name, u.Account, fmt.Sprintf(format, v...), ErrInvariant)
}
