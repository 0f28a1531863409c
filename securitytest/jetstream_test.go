package securitytest

import (
	"encoding/json"
	"testing"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/wire"
)

// TestConsumerCreate: issue 16's fourth attack. On the code before the
// reply model every service could create consumers on the policy stream
// with any deliver subject (the bucket delivered into web's inbox, or to
// $SRV.STATUS.inventory) and without bound (3,000 durable consumers in 6s).
// Now JetStream lives in the store account only, which exports the bucket's
// stream and its direct get by subject, and no user of a service account
// may publish to any other JetStream API: a consumer cannot be created at
// all, with a foreign deliver subject or past any number, by a service
// (each of the shop's) or the bridge, under any prefix (a JetStream
// domain's, the direct get's export with a body), nor the stream be
// changed, purged or deleted, nor $SYS be read. The bucket keeps its one
// message and no consumer.
func TestConsumerCreate(t *testing.T) {
	f := shopFile(t)
	consumer := func(deliver string) []byte {
		b, _ := json.Marshal(map[string]any{
			"stream_name": bucketStream,
			"config": map[string]any{
				"durable_name": "spy", "deliver_subject": deliver,
				"filter_subject": "$KV." + accounts.PoliciesBucket + ".>", "deliver_policy": "all",
			},
		})
		return b
	}
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		st := m.store(t)
		rev := st.apply(t, f)
		users := []string{accounts.Bridge}
		for _, svc := range f.AccountsSpec().Services {
			users = append(users, svc.Name)
		}
		for _, user := range users {
			t.Run(user, func(t *testing.T) {
				c := m.connect(t, user)
				reply := wire.PairInbox(user, wire.PeerJS) + ".x"
				for _, req := range []struct {
					subject string
					data    []byte
				}{
					{consumerAPI, consumer(wire.PairInbox("web", "inventory") + ".spy")},
					{consumerAPI + ".spy", consumer("$SRV.STATUS.inventory")},
					{consumerAPI + ".spy.$KV." + accounts.PoliciesBucket + ".>", consumer(wire.InboxPrefix(user) + ".mine")},
					{"$JS.API.CONSUMER.DURABLE.CREATE." + bucketStream + ".spy", consumer(wire.InboxPrefix(user) + ".mine")},
					{"$JS.hub.API.CONSUMER.CREATE." + bucketStream, consumer(wire.InboxPrefix(user) + ".mine")},
					{"$JS.API.STREAM.UPDATE." + bucketStream, []byte(`{"name":"` + bucketStream + `","max_consumers":100000}`)},
					{purge, nil},
					{"$JS.API.STREAM.DELETE." + bucketStream, nil},
					{"$JS.API.STREAM.CREATE.PWN", []byte(`{"name":"PWN","subjects":["mesh.>"]}`)},
					{"$JS.API.INFO", nil},
					{"$JS.API.DIRECT.GET." + bucketStream, []byte(`{"seq":1}`)},
					{"$JS.ACK." + bucketStream + ".spy.1.1.1.1.0", nil},
					{kvMesh, []byte(`{"version":1}`)},
					{"$SYS.REQ.SERVER.PING.CONNZ", nil},
					{"$SYS.REQ.ACCOUNT.mesh.CONNZ", nil},
				} {
					if err := c.PublishRequest(req.subject, reply, req.data); err != nil {
						t.Fatal(err)
					}
					c.waitViolation(t, req.subject)
				}
				// Past any bound: there is none to pass.
				for range 200 {
					if err := c.PublishRequest(consumerAPI, reply, consumer(wire.InboxPrefix(user)+".mine")); err != nil {
						t.Fatal(err)
					}
				}
				for range 200 {
					c.waitViolation(t, consumerAPI)
				}
				if _, err := c.SubscribeSync("$SYS.>"); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, "$SYS.>")
				if _, err := c.SubscribeSync("$JS.API.>"); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, "$JS.API.>")
			})
		}
		// The one JetStream API a service has: the direct get of a key of
		// the bucket. A body asking for an old revision or a batch is a
		// bad request; one asking for no headers gets the current value
		// bare (so a direct get's answer cannot be told by its headers:
		// what keeps it out of a call's reply is the call's random reply
		// subject).
		t.Run("direct get", func(t *testing.T) {
			orders := m.connect(t, "orders")
			inbox := wire.PairInbox("orders", wire.PeerJS) + ".pin"
			sub, err := orders.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct{ body, status string }{
				{`{"seq":1}`, "408"},
				{`{"batch":10}`, "408"},
				{`{"next_by_subj":"$KV.natsmesh-policies.>"}`, "408"},
				{`{"no_hdr":true}`, ""},
			} {
				if err := orders.PublishRequest(directGet("mesh"), inbox, []byte(tc.body)); err != nil {
					t.Fatal(err)
				}
				msg := next(t, sub)
				if got := msg.Header.Get("Status"); got != tc.status {
					t.Errorf("direct get with %s: status %q, want %q", tc.body, got, tc.status)
				}
				if tc.status == "" && (len(msg.Header) != 0 || len(msg.Data) == 0) {
					t.Errorf("direct get with %s: headers %v, %d bytes", tc.body, msg.Header, len(msg.Data))
				}
			}
			orders.noViolations(t)
		})
		st.intact(t, rev)
	})
}
