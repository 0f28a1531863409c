package accounts

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/natsmesh/natsmesh/wire"
)

// Permissions are the subjects one user may publish and subscribe to.
// Anything not listed is refused: the broker answers a publish with a
// permissions violation (and drops the message) and refuses a
// subscription.
type Permissions struct {
	// Publish lists subjects, with wildcards.
	Publish []string
	// Subscribe lists subjects, or "subject queue" for a subscription that
	// is only allowed in that queue group (nats-server's queue permission
	// syntax; the queue may end in a wildcard).
	Subscribe []string
	// Responses, when not nil, would let the user publish to the reply
	// subject of each message the broker delivered to it (nats-server's
	// allow_responses; a user JWT's resp): at most MaxMsgs messages, within
	// Expires of the delivery, whatever that subject is. No generated user
	// has it (docs/security.md, "The reply model"): the reply subject is
	// the sender's choice, checked against no deny list, so a responder
	// could be made to publish anywhere, and a user that may publish and
	// subscribe one subject could grant itself any subject. CheckUsers
	// refuses it for services and the bridge, and for anyone else it
	// requires that the user subscribe no subject that it, or any other
	// user outside the system account, may publish.
	Responses *Responses
}

// Responses bounds the replies a user may publish to messages delivered
// to it (see Permissions.Responses).
type Responses struct {
	MaxMsgs int
	Expires time.Duration
}

// User is one generated NATS user.
type User struct {
	// Name is the service's name, Bridge, the admin's name or SysUser. It
	// names the key files (DIR/<name>.nk, DIR/<name>.creds).
	Name    string
	Account string
	// Perms is nil for the system account user, which is unrestricted.
	Perms *Permissions
}

const kvStream = "KV_" + PoliciesBucket

// Subjects of the policy store (see StoreAccount).
const (
	// kvSubjects are the policies bucket's messages: each write of a key
	// is a message on "$KV.<bucket>.<key>". STORE exports them as a stream,
	// so a service account's users see each new version as it is written
	// (live updates) and cannot write them.
	kvSubjects = "$KV." + PoliciesBucket + ".>"
	// directGet is JetStream's direct get of the bucket by subject
	// ("$JS.API.DIRECT.GET.KV_natsmesh-policies.$KV.natsmesh-policies.<key>",
	// no body; the last message of that key, which is what nats.go's
	// KeyValue.Get asks). STORE exports it as a service: the request
	// crosses with a "_R_" reply, and the broker delivers JetStream's
	// answer to the requester's reply subject, whatever it is, in the
	// requester's own account (an answer through a service import is
	// never exported further). The form without a subject token (a JSON
	// body naming a sequence or a batch) is not exported: KeyValue.Get
	// does not use it, and it would let a service have JetStream deliver
	// any old revision to a subject of its choosing in its own account.
	directGet = "$JS.API.DIRECT.GET." + kvStream + ".>"
	// discoverySubjects are micro discovery's requests ($SRV.PING|INFO|STATS
	// and their targeted forms), which STORE exports as a stream so the
	// admin's discovery reaches every service account.
	discoverySubjects = "$SRV.>"
)

// Users returns every user of the generated configuration with its
// permissions, in a fixed order: the services as in s.Services, the bridge,
// the admin and the system user. It checks them with CheckUsers: an error
// there (wrapping ErrInvariant) is a bug of this package, reported instead
// of generating a configuration that breaks the reply model.
//
// No user has response permissions: every message is checked against the
// publisher's static permissions (docs/security.md, "The reply model").
// A service S in account A gets:
//
//	publish   mesh.<C>.*.S.>                 for each callee C that admits S with no methods
//	          mesh.<C>.*.S.http.<METHOD>     for each HTTP method C admits S for
//	          mesh.<C>.*.S.grpc.<op>         for each gRPC method (escaped "/pkg.Svc/Method", or *)
//	          mesh-inst.<C>.*.S.…            each of those addressed to one instance of C, and
//	          $SRV.STATUS.<C>.S              the census of C's instances (internal/census), for
//	                                         each C: a call no instance took is sent there next
//	          _INBOX_mesh.<O>.S.>            the pair inbox of S in O's inbox, once for each O
//	                                         that may call S (S's replies to O) or that S may
//	                                         call (S's stream credits and chunks to O), and
//	                                         for O = S (siblings' answers, self-calls)
//	          $SRV.STATUS.S                  passive health: an instance asks its siblings
//	                                         (passive.StatusSubject), which subscribe it too
//	          _INBOX_mesh.<admin>.SRV.>      discovery answers to the admin
//	          _INBOX_mesh.bridge.SRV.>       and to the bridge
//	          $JS.API.DIRECT.GET.KV_natsmesh-policies.>   the current mesh file (through STORE's export)
//	subscribe mesh.S._.> S                   in queue group S only
//	          mesh.S.<v>.> S.<v>             each declared subset v, in its own queue group
//	                                         only (an undeclared subset: nothing)
//	          mesh-inst.S.> S                calls addressed to an instance of S, in queue group S
//	                                         only (each instance subscribes its own,
//	                                         mesh-inst.S.<id>.>: a share, never a copy)
//	          _INBOX_mesh.S.>                S's replies, streams and discovery answers
//	          $SRV.PING, $SRV.INFO, $SRV.STATS, $SRV.*.S, $SRV.*.S.*
//	                                         micro discovery as S only (and $SRV.STATUS.S
//	                                         from S's siblings)
//	          $KV.natsmesh-policies.>        each new version of the mesh file (STORE's export)
//
// A callee C admits S when C's allow list names S, or C has no allow list
// and the Default is Allow, and S can reach C: both are in one account,
// or C's account exports C to S's account. The pair inboxes are the mirror
// of those call permissions: S may publish into O's inbox only under
// O's pair with S, so it answers, or lies in, only replies of calls made
// to S and streams of calls between O and S.
//
// The bridge (in DefaultAccount) gets the calls and pair inboxes of a
// caller named Bridge (it is called by nobody), the discovery answers'
// inboxes, $SRV.PING, $SRV.INFO and $SRV.STATS (its dashboard asks them),
// the direct get, and subscribes its inbox, discovery as Bridge and the
// live updates. The admin, the one user of StoreAccount, may use
// discovery ($SRV.>), the whole JetStream API of STORE and write the
// policies bucket, and reads _INBOX_mesh.<admin>.>, _INBOX.> and the
// bucket's writes ($KV.natsmesh-policies.>). The
// system user is unrestricted.
func (s *Spec) Users() ([]User, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	g := newGraph(s)
	if err := g.err; err != nil {
		return nil, err
	}
	admin := s.admin()
	answers := []string{
		wire.PairInbox(admin, wire.PeerSRV) + ".>",
		wire.PairInbox(Bridge, wire.PeerSRV) + ".>",
	}
	var users []User
	for i := range s.Services {
		svc := &s.Services[i]
		p := &Permissions{}
		p.Publish = append(p.Publish, g.calls[svc.Name]...)
		p.Publish = append(p.Publish, addressed(g.calls[svc.Name])...)
		p.Publish = append(p.Publish, g.pairInboxes(svc.Name)...)
		// Passive health: an instance counts its siblings before it leaves
		// its queue groups (passive.StatusSubject); they answer in its
		// pair inbox _INBOX_mesh.S.S.
		p.Publish = append(p.Publish, "$SRV.STATUS."+svc.Name)
		p.Publish = append(p.Publish, answers...)
		p.Publish = append(p.Publish, directGet)

		p.Subscribe = append(p.Subscribe, wire.Prefix+"."+svc.Name+"."+wire.AnySubset+".> "+svc.Name)
		for _, sub := range svc.Subsets {
			subjects, queues := wire.ServiceSubjects(svc.Name, sub)
			p.Subscribe = append(p.Subscribe, subjects[1]+" "+queues[1])
		}
		p.Subscribe = append(p.Subscribe, wire.InstancePrefix+"."+svc.Name+".> "+svc.Name)
		p.Subscribe = append(p.Subscribe, wire.InboxPrefix(svc.Name)+".>")
		p.Subscribe = append(p.Subscribe, discovery(svc.Name)...)
		p.Subscribe = append(p.Subscribe, kvSubjects)
		p.Publish, p.Subscribe = dedup(p.Publish), dedup(p.Subscribe)
		users = append(users, User{Name: svc.Name, Account: svc.account(), Perms: p})
	}

	bp := &Permissions{}
	bp.Publish = append(bp.Publish, g.calls[Bridge]...)
	bp.Publish = append(bp.Publish, addressed(g.calls[Bridge])...)
	bp.Publish = append(bp.Publish, g.pairInboxes(Bridge)...)
	bp.Publish = append(bp.Publish, answers...)
	bp.Publish = append(bp.Publish, "$SRV.PING", "$SRV.INFO", "$SRV.STATS", directGet)
	bp.Subscribe = append([]string{wire.InboxPrefix(Bridge) + ".>"}, discovery(Bridge)...)
	bp.Subscribe = append(bp.Subscribe, kvSubjects)
	bp.Publish = dedup(bp.Publish)
	users = append(users, User{Name: Bridge, Account: DefaultAccount, Perms: bp})

	ap := &Permissions{
		Publish: []string{
			"$SRV.>",
			"$JS.API.>",
			"$KV." + PoliciesBucket + ".>",
			"$JS.ACK.>",
			"$JS.FC.>",
		},
		// _INBOX.> as well: the nats CLI and nats.go default to that
		// prefix for JetStream. Discovery answers come only to
		// _INBOX_mesh.<admin>.SRV. The bucket's writes too: a watch as the
		// admin (the demo's) hears of each new version as agents do.
		Subscribe: []string{wire.InboxPrefix(admin) + ".>", "_INBOX.>", "$KV." + PoliciesBucket + ".>"},
	}
	users = append(users, User{Name: admin, Account: StoreAccount, Perms: ap})
	users = append(users, User{Name: SysUser, Account: SystemAccount})
	if err := CheckUsers(users); err != nil {
		return nil, err
	}
	return users, nil
}

// graph is who may call whom, resolved over accounts and exports.
type graph struct {
	account map[string]string   // caller (service or bridge) -> account
	calls   map[string][]string // caller -> its call subjects
	// edges are the (caller, callee) pairs that may call, in the order of
	// s.Services' allow lists: each pair once, whatever the methods.
	edges []edge
	// peers[x][o]: x and o are connected by a call in either direction.
	peers map[string]map[string]bool
	// order is every caller name, services as in s.Services, then Bridge.
	order []string
	err   error
}

type edge struct{ caller, callee string }

func newGraph(s *Spec) *graph {
	g := &graph{
		account: map[string]string{Bridge: DefaultAccount},
		calls:   map[string][]string{},
		peers:   map[string]map[string]bool{},
	}
	exported := map[[2]string]bool{} // {service, importing account}
	for _, a := range s.Accounts {
		for _, e := range a.Exports {
			for _, to := range e.To {
				exported[[2]string{e.Service, to}] = true
			}
		}
	}
	for _, svc := range s.Services {
		g.account[svc.Name] = svc.account()
		g.order = append(g.order, svc.Name)
	}
	g.order = append(g.order, Bridge)
	reaches := func(caller string, callee *Service) bool {
		a := g.account[caller]
		return a == callee.account() || exported[[2]string{callee.Name, a}]
	}
	for i := range s.Services {
		callee := &s.Services[i]
		base := wire.Prefix + "." + callee.Name + ".*."
		if callee.Allow == nil {
			if s.Default == Deny {
				continue
			}
			for _, x := range g.order {
				if !reaches(x, callee) {
					continue
				}
				g.calls[x] = append(g.calls[x], base+x+".>")
				g.connect(x, callee.Name)
			}
			continue
		}
		for _, r := range callee.Allow {
			if !reaches(r.Caller, callee) {
				if g.err == nil {
					g.err = specErr("service %q allows caller %q of account %q, but account %q does not export %q to it",
						callee.Name, r.Caller, g.account[r.Caller], callee.account(), callee.Name)
				}
				continue
			}
			if len(r.Methods) == 0 {
				g.calls[r.Caller] = append(g.calls[r.Caller], base+r.Caller+".>")
			}
			for _, m := range r.Methods {
				proto, op, _ := methodOp(m) // checked by Validate
				g.calls[r.Caller] = append(g.calls[r.Caller], fmt.Sprintf("%s%s.%s.%s", base, r.Caller, proto, op))
			}
			g.connect(r.Caller, callee.Name)
		}
	}
	return g
}

// connect records that caller may call callee.
func (g *graph) connect(caller, callee string) {
	if !slices.Contains(g.edges, edge{caller, callee}) {
		g.edges = append(g.edges, edge{caller, callee})
	}
	for _, p := range [][2]string{{caller, callee}, {callee, caller}} {
		if g.peers[p[0]] == nil {
			g.peers[p[0]] = map[string]bool{}
		}
		g.peers[p[0]][p[1]] = true
	}
}

// pairInboxes are the inboxes x may publish to: its pair in the inbox of
// each owner it is connected to, _INBOX_mesh.<owner>.<x>.>. For a caller
// owner these are x's replies; for a callee owner, x's stream messages
// (credits, request chunks, cancel) to the callee's instance. A service
// always has its pair in its own inbox: its siblings answer there
// ($SRV.STATUS.<x>), and so do its calls to itself.
func (g *graph) pairInboxes(x string) []string {
	var out []string
	for _, o := range g.order {
		if g.peers[x][o] || o == x && x != Bridge {
			out = append(out, wire.PairInbox(o, x)+".>")
		}
	}
	return out
}

// addressed are the subjects that go with calls, a caller's call
// subjects (mesh.<C>.*.<x>.<rest>): the same calls addressed to one
// instance of C (mesh-inst.<C>.*.<x>.<rest>) and the census of C's
// instances as x ($SRV.STATUS.<C>.<x>, internal/census), which a caller
// sends a call to once it went unanswered (docs/wire.md, "Liveness").
func addressed(calls []string) []string {
	var out []string
	for _, c := range calls {
		rest, ok := strings.CutPrefix(c, wire.Prefix+".")
		if !ok {
			continue
		}
		toks := strings.SplitN(rest, ".", 4) // callee, subset, caller, rest
		if len(toks) < 4 {
			continue
		}
		out = append(out, wire.InstancePrefix+"."+rest, "$SRV.STATUS."+toks[0]+"."+toks[2])
	}
	return out
}

// discovery is what name subscribes to answer micro discovery as itself
// (internal/discovery): the broadcasts and its own name's subjects.
func discovery(name string) []string {
	return []string{"$SRV.PING", "$SRV.INFO", "$SRV.STATS", "$SRV.*." + name, "$SRV.*." + name + ".*"}
}

// dedup drops repeated entries, keeping the first of each.
func dedup(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
