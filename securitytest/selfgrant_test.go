package securitytest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/wire"
)

// TestSelfGrant: issue 16's first attack. nats-server grants a user with
// response permissions a publish on the reply subject of every message it
// receives, its own included, whatever that subject is; on the code before
// the reply model every service had them, and published on
// $SRV.STATUS.<itself> (which it also subscribed) with a reply subject of
// its choosing, got its own message back, and "answered" it: it rewrote
// the mesh file, called inventory as web, wrote into web's inbox, created
// streams and consumers, read $SYS. With no response permissions, a self-
// delivered message grants nothing.
//
// Every subject any generated user of the shop (each service and the
// bridge) may both publish and subscribe (accounts.Overlap) is tried,
// with each reply subject the probe used, in both modes: the broker
// refuses every answer (a permissions violation to the answering user) and
// the bucket holds what the admin wrote, with no consumer and no other
// stream.
func TestSelfGrant(t *testing.T) {
	f := shopFile(t)
	spec := f.AccountsSpec()
	users, err := spec.Users()
	if err != nil {
		t.Fatal(err)
	}
	// What the probe made its answers: the mesh file rewritten, the bucket
	// emptied, a consumer and a stream of its own, a call as another
	// caller with a method it may not use, a reply in web's inbox as
	// another callee, and the system account's connection list.
	consumer, _ := json.Marshal(map[string]any{
		"stream_name": bucketStream,
		"config":      map[string]any{"deliver_subject": wire.InboxPrefix("web") + ".spy", "filter_subject": "$KV." + accounts.PoliciesBucket + ".>"},
	})
	answers := []struct {
		reply string
		data  []byte
	}{
		{kvMesh, []byte(`{"version":1}`)},
		{purge, nil},
		{consumerAPI, consumer},
		{"$JS.API.STREAM.CREATE.PWN", []byte(`{"name":"PWN","subjects":["mesh.>"]}`)},
		{"$SYS.REQ.SERVER.PING.CONNZ", nil},
		// These two the user who may publish them anyway skips (inventory
		// answers web; web may call inventory with any method); the
		// others try them.
		{wire.Subject{Service: "inventory", Caller: "web", Proto: wire.ProtoHTTP, Op: "DELETE"}.String(), nil},
		{wire.PairInbox("web", "inventory") + ".x", []byte("forged")},
		// And for those two: as orders, and in web's inbox as orders.
		{wire.Subject{Service: "inventory", Caller: "orders", Proto: wire.ProtoHTTP, Op: "DELETE"}.String(), nil},
		{wire.PairInbox("web", "orders") + ".x", []byte("forged")},
	}
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		st := m.store(t)
		rev := st.apply(t, f)
		tried := 0
		for _, u := range users {
			if u.Perms == nil || u.Account == accounts.StoreAccount {
				continue // the system user (unrestricted) and the admin
			}
			for _, pattern := range accounts.Overlap(u.Perms) {
				subject := literal(pattern)
				t.Run(u.Name+" "+subject, func(t *testing.T) {
					c := m.connect(t, u.Name)
					sub, err := c.QueueSubscribeSync(subject, queueOf(subject))
					if err != nil {
						t.Fatal(err)
					}
					c.noViolations(t)
					n := 0
					for _, a := range answers {
						if mayPublish(u.Perms, a.reply) {
							continue // its own right: nothing to gain
						}
						n++
						if err := c.PublishRequest(subject, a.reply, []byte("probe")); err != nil {
							t.Fatal(err)
						}
						msg := next(t, sub)
						if msg.Reply != a.reply {
							t.Fatalf("got back reply subject %q, want %q", msg.Reply, a.reply)
						}
						if err := msg.Respond(a.data); err != nil {
							t.Fatal(err)
						}
						c.waitViolation(t, a.reply)
					}
					if n < len(answers)-2 {
						t.Fatalf("only %d of the answers tried", n)
					}
				})
				tried++
			}
		}
		// Each service may both publish and subscribe its sibling
		// subject and its pair inbox with itself, those called by all
		// (web and gateway) their own calls, the bridge $SRV.PING|INFO|
		// STATS and its discovery inbox.
		if tried < 2*len(spec.Services) {
			t.Fatalf("only %d overlapping subjects tried", tried)
		}
		st.intact(t, rev)
	})
}

// literal is a subject that pattern matches: each "*" made a token, a
// last ">" two (a call subject's proto and op).
func literal(pattern string) string {
	toks := strings.Split(pattern, ".")
	for i, tok := range toks {
		switch tok {
		case "*":
			toks[i] = "x"
		case ">":
			toks[i] = "http.GET"
		}
	}
	return strings.Join(toks, ".")
}

// mayPublish reports whether p lets its user publish to subject (a
// literal) by its static permissions.
func mayPublish(p *accounts.Permissions, subject string) bool {
	for _, pub := range p.Publish {
		if matches(pub, subject) {
			return true
		}
	}
	return false
}

// matches reports whether pattern matches the literal subject.
func matches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(s) == len(p)
}

// queueOf is the queue group a service may subscribe subject in (the
// generated permissions allow a call subject in its queue group only),
// "" for any other subject.
func queueOf(subject string) string {
	s, err := wire.ParseSubject(subject)
	if err != nil || !wire.IsCallSubject(subject) {
		return ""
	}
	if s.Instance != "" {
		return s.Service // an instance subject: in the service's group
	}
	if s.Subset == "" {
		return s.Service
	}
	return s.Service + "." + s.Subset
}
