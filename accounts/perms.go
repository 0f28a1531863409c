package accounts

import (
	"fmt"
	"slices"

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

const (
	kvStream = "KV_" + PoliciesBucket
	// replyPrefix is the prefix of the reply subjects nats-server makes
	// for requests that cross accounts through a service import: a call
	// from another account arrives with a reply "_R_.xxxxxx.yyyyyy" (and
	// ".<server>.T" appended when latency is tracked), which the
	// exporting side publishes its response to.
	replyPrefix = "_R_.>"
)

// kvWatch are the subjects a client publishes to read and watch the
// policies bucket with nats.go (jetstream.KeyValue, Get, Watch; the legacy
// nats.JetStreamContext the same): stream info on opening the bucket,
// creating (and on Stop, deleting) the ordered push consumer that a Watch
// is (CONSUMER.CREATE.<stream>[.<name>[.<filter>]]), direct get and
// message get for Get, and the flow control replies the ordered consumer
// sends (old "$JS.FC.<stream>..." and v2 "$JS.FC.<domain>.<hash>.<stream>..."
// forms). The consumer delivers to the client's own inbox (nats.NewInbox,
// so under its custom inbox prefix), which it may subscribe already.
// Deleting a consumer needs its (random) name, so a client can only
// delete consumers it knows of.
var kvWatch = []string{
	"$JS.API.STREAM.INFO." + kvStream,
	"$JS.API.CONSUMER.CREATE." + kvStream,
	"$JS.API.CONSUMER.CREATE." + kvStream + ".>",
	"$JS.API.CONSUMER.DELETE." + kvStream + ".*",
	"$JS.API.CONSUMER.INFO." + kvStream + ".*",
	"$JS.API.DIRECT.GET." + kvStream,
	"$JS.API.DIRECT.GET." + kvStream + ".>",
	"$JS.API.STREAM.MSG.GET." + kvStream,
	"$JS.FC." + kvStream + ".>",
	"$JS.FC.*.*." + kvStream + ".>",
}

// Users returns every user of the generated configuration with its
// permissions, in a fixed order: the services as in s.Services, the bridge,
// the admin and the system user.
//
// A service S in account A gets:
//
//	publish   mesh.<C>.*.S.>                 for each callee C that admits S with no methods
//	          mesh.<C>.*.S.http.<METHOD>     for each HTTP method C admits S for
//	          mesh.<C>.*.S.grpc.<op>         for each gRPC method (escaped "/pkg.Svc/Method", or *)
//	          _INBOX_mesh.<X>.>              for each caller X of S in A, and the admin (if in A):
//	                                         where S's replies go
//	          _R_.>                          if S is exported: replies to calls from other accounts
//	          the policies bucket read API   (see kvWatch)
//	          $SRV.STATUS.S, _INBOX_mesh.S.>  passive health: an instance asks its
//	                                         siblings (agent.StatusSubject) and they answer it
//	subscribe mesh.S._.> S                   in queue group S only
//	          mesh.S.<v>.> S.<v>             each subset v, in its own queue group only
//	                                         (with no subsets declared: mesh.S.*.> S.*)
//	          _INBOX_mesh.S.>                S's replies, and its JetStream deliveries
//	          $SRV.PING, $SRV.INFO, $SRV.STATS, $SRV.*.S, $SRV.*.S.*   micro discovery as S only
//
// A callee C admits S when C's allow list names S, or C has no allow list
// and the Default is Allow, and S can reach C: both are in one account,
// or C's account exports C to S's account.
//
// The bridge gets the publish rules of a caller named Bridge and its
// inbox, the admin may use discovery ($SRV.>), the whole JetStream API and
// the policies bucket, and the system user is unrestricted.
//
// No user gets allow_responses: a service publishes replies only to the
// inboxes of the callers its allow list admits (and to "_R_" replies of
// cross-account calls). allow_responses would let a caller have any
// service publish one message as that service to any subject it chose as
// the reply subject, including a call subject with the service's caller
// token; nats-server checks such responses against no deny list.
func (s *Spec) Users() ([]User, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	g := newGraph(s)
	var users []User
	for i := range s.Services {
		svc := &s.Services[i]
		p := &Permissions{}
		p.Publish = append(p.Publish, g.calls[svc.Name]...)
		crossAccount := false
		for _, x := range g.callers[svc.Name] {
			if g.account[x] == svc.account() {
				p.Publish = append(p.Publish, wire.InboxPrefix(x)+".>")
			} else {
				crossAccount = true
			}
		}
		if svc.account() == DefaultAccount {
			p.Publish = append(p.Publish, wire.InboxPrefix(s.admin())+".>")
		}
		if crossAccount {
			p.Publish = append(p.Publish, replyPrefix)
		}
		p.Publish = append(p.Publish, kvWatch...)
		// Passive health: an instance counts its siblings before it leaves
		// its queue groups (agent.StatusSubject), and they answer it.
		p.Publish = append(p.Publish, "$SRV.STATUS."+svc.Name, wire.InboxPrefix(svc.Name)+".>")

		if len(svc.Subsets) == 0 {
			p.Subscribe = append(p.Subscribe,
				wire.Prefix+"."+svc.Name+"."+wire.AnySubset+".> "+svc.Name,
				wire.Prefix+"."+svc.Name+".*.> "+svc.Name+".*")
		} else {
			p.Subscribe = append(p.Subscribe, wire.Prefix+"."+svc.Name+"."+wire.AnySubset+".> "+svc.Name)
			for _, sub := range svc.Subsets {
				subjects, queues := wire.ServiceSubjects(svc.Name, sub)
				p.Subscribe = append(p.Subscribe, subjects[1]+" "+queues[1])
			}
		}
		p.Subscribe = append(p.Subscribe,
			wire.InboxPrefix(svc.Name)+".>",
			"$SRV.PING", "$SRV.INFO", "$SRV.STATS",
			"$SRV.*."+svc.Name, "$SRV.*."+svc.Name+".*")
		p.Publish, p.Subscribe = dedup(p.Publish), dedup(p.Subscribe)
		users = append(users, User{Name: svc.Name, Account: svc.account(), Perms: p})
	}
	if err := g.err; err != nil {
		return nil, err
	}

	bp := &Permissions{
		Publish:   dedup(append(slices.Clone(g.calls[Bridge]), kvWatch...)),
		Subscribe: []string{wire.InboxPrefix(Bridge) + ".>"},
	}
	users = append(users, User{Name: Bridge, Account: DefaultAccount, Perms: bp})

	admin := s.admin()
	ap := &Permissions{
		Publish: []string{
			"$SRV.>",
			"$JS.API.>",
			"$KV." + PoliciesBucket + ".>",
			"$JS.ACK.>",
			"$JS.FC.>",
		},
		// _INBOX.> as well: the nats CLI and nats.go default to that
		// prefix. Services reply only to _INBOX_mesh.<admin>, so run
		// discovery with nats --inbox-prefix _INBOX_mesh.<admin>.
		Subscribe: []string{wire.InboxPrefix(admin) + ".>", "_INBOX.>"},
	}
	users = append(users, User{Name: admin, Account: DefaultAccount, Perms: ap})
	users = append(users, User{Name: SysUser, Account: SystemAccount})
	return users, nil
}

// graph is who may call whom, resolved over accounts and exports.
type graph struct {
	account map[string]string // caller (service or bridge) -> account
	calls   map[string][]string
	callers map[string][]string // callee -> callers, in Services order (bridge last)
	err     error
}

func newGraph(s *Spec) *graph {
	g := &graph{account: map[string]string{Bridge: DefaultAccount}, calls: map[string][]string{}, callers: map[string][]string{}}
	exported := map[[2]string]bool{} // {service, importing account}
	for _, a := range s.Accounts {
		for _, e := range a.Exports {
			for _, to := range e.To {
				exported[[2]string{e.Service, to}] = true
			}
		}
	}
	all := []string{}
	for _, svc := range s.Services {
		g.account[svc.Name] = svc.account()
		all = append(all, svc.Name)
	}
	all = append(all, Bridge)
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
			for _, x := range all {
				if !reaches(x, callee) {
					continue
				}
				g.calls[x] = append(g.calls[x], base+x+".>")
				g.callers[callee.Name] = append(g.callers[callee.Name], x)
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
			if !slices.Contains(g.callers[callee.Name], r.Caller) {
				g.callers[callee.Name] = append(g.callers[callee.Name], r.Caller)
			}
		}
	}
	return g
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
