package accounts

import (
	"fmt"
	"slices"
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
	// Responses, when not nil, lets the user publish to the reply subject
	// of each message the broker delivered to it (nats-server's
	// allow_responses; a user JWT's resp): at most MaxMsgs messages, within
	// Expires of the delivery. This is how services answer calls, across
	// accounts too ("_R_." replies of service imports), and discovery
	// requests, without a static grant on anyone's inbox.
	Responses *Responses
}

// Responses bounds the replies a user may publish to requests delivered to
// it (see Permissions.Responses).
type Responses struct {
	MaxMsgs int
	Expires time.Duration
}

// ResponseExpiry is how long after a delivery its reply may be published:
// wire.MaxTimeout, the longest deadline an inbound agent honours, so no reply
// sent within a call's deadline is refused. A longer bound costs nothing in
// security (the grant is for one message to a reply subject the callee was
// actually sent, and a caller that gave up has dropped that token); a
// shorter one would drop late replies of long calls. The broker forgets a
// used grant within about a second and an unused one at expiry, so memory
// grows only with requests delivered and never answered, which the inbound
// agent does not leave (exactly one reply).
const ResponseExpiry = wire.MaxTimeout

// reply is the response permission every service and the bridge get.
var reply = Responses{MaxMsgs: 1, Expires: ResponseExpiry}

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
//	          the policies bucket read API   (see kvWatch)
//	          $SRV.STATUS.S                  passive health: an instance asks its
//	                                         siblings (siblings.StatusSubject)
//	responses max 1 within ResponseExpiry    replies to what was delivered to S: calls
//	                                         (same account, and "_R_." replies of
//	                                         calls from other accounts), discovery
//	                                         ($SRV.PING/INFO/STATS from the admin,
//	                                         $SRV.STATUS.S from a sibling)
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
// The bridge gets the publish rules of a caller named Bridge, its inbox,
// discovery as Bridge (the gateway answers it too) and the same responses
// grant, the admin may use discovery ($SRV.>), the whole JetStream API and
// the policies bucket, and the system user is unrestricted.
//
// No service may publish to another's inbox: a callee answers only the
// requests delivered to it, once each, so it cannot forge a reply to a
// call its caller made to someone else, nor answer the admin's discovery
// as another service. A reply subject a caller chooses is answered only
// if it is in that caller's inbox (pipeline.ReplyAllowed), so a caller
// cannot make a callee publish elsewhere as itself (the broker checks
// responses against no deny list).
func (s *Spec) Users() ([]User, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	g := newGraph(s)
	var users []User
	for i := range s.Services {
		svc := &s.Services[i]
		p := &Permissions{Responses: &reply}
		p.Publish = append(p.Publish, g.calls[svc.Name]...)
		p.Publish = append(p.Publish, kvWatch...)
		// Passive health: an instance counts its siblings before it leaves
		// its queue groups (siblings.StatusSubject); they answer it as a
		// response.
		p.Publish = append(p.Publish, "$SRV.STATUS."+svc.Name)

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
		p.Subscribe = append(p.Subscribe, wire.InboxPrefix(svc.Name)+".>")
		p.Subscribe = append(p.Subscribe, discovery(svc.Name)...)
		p.Publish, p.Subscribe = dedup(p.Publish), dedup(p.Subscribe)
		users = append(users, User{Name: svc.Name, Account: svc.account(), Perms: p})
	}
	if err := g.err; err != nil {
		return nil, err
	}

	bp := &Permissions{
		Publish:   dedup(append(slices.Clone(g.calls[Bridge]), kvWatch...)),
		Subscribe: append([]string{wire.InboxPrefix(Bridge) + ".>"}, discovery(Bridge)...),
		Responses: &reply,
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
		// prefix, and services answer discovery as responses to any
		// reply subject (calls only to the caller's mesh inbox).
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
	err     error
}

func newGraph(s *Spec) *graph {
	g := &graph{account: map[string]string{Bridge: DefaultAccount}, calls: map[string][]string{}}
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
		}
	}
	return g
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
