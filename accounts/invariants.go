package accounts

import (
	"fmt"
	"slices"

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
//   - a user with response permissions may not both publish and subscribe
//     any subject (a message it sends itself, with a reply subject of its
//     choosing, would grant it a publish there);
//   - services and the bridge (every user outside StoreAccount and
//     SystemAccount) have no response permissions, and each subject they
//     may publish is within their own calls (mesh.*.*.<self>.>), their
//     pairs in others' inboxes (_INBOX_mesh.*.<self>.>), the discovery
//     answers' inboxes of the admin and the bridge
//     (_INBOX_mesh.<admin|bridge>.SRV.>), their own sibling subject
//     ($SRV.STATUS.<self>; and for the bridge $SRV.PING|INFO|STATS) and
//     the direct get of the policies bucket. In particular none reaches
//     $JS (but that direct get), $KV, $SYS, "_R_" or "_INBOX.";
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
			for _, pub := range p.Publish {
				for _, sub := range p.Subscribe {
					if intersects(pub, subjectOf(sub)) {
						return invariantErr(u, "has response permissions and may both publish %q and subscribe %q: a message it sends itself would grant it any reply subject", pub, sub)
					}
				}
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
	}
	return nil
}

func invariantErr(u User, format string, v ...any) error {
	return fmt.Errorf("accounts: user %q (account %s) %s: %w", u.Name, u.Account, fmt.Sprintf(format, v...), ErrInvariant)
}
