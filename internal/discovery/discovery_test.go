package discovery

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAnswerable(t *testing.T) {
	for reply, want := range map[string]bool{
		"_INBOX.abc.def":                  true, // the nats CLI's
		"_INBOX_mesh.admin.SRV.x.1":       true, // the mesh's discovery requesters'
		"_INBOX_mesh.bridge.SRV.x":        true,
		"_INBOX_mesh.web.inventory.x.1-2": false, // a pair inbox of calls
		"_INBOX_mesh.orders.JS.x":         false, // a watch's
		"_INBOX_mesh.web":                 false,
		"_INBOX_mesh.web.srv.x":           false,
		"anything.else":                   true,
		"mesh.orders._.web.http.GET":      false, // a call as the service
		"mesh.x":                          false,
		"$JS.API.STREAM.CREATE.PWN":       false,
		"$KV.natsmesh-policies.mesh":      false,
		"$SYS.REQ.SERVER.PING":            false,
		"$SRV.STATUS.orders":              false,
		"$O.bucket.x":                     false,
		"_R_.abcdef.ABCDEF":               false,
		"_INBOX.*":                        false,
		"_INBOX.>":                        false,
		"_INBOX..x":                       false,
		"_INBOX.x.":                       false,
		"_INBOX.a b":                      false,
		"":                                false,
	} {
		if got := Answerable(reply); got != want {
			t.Errorf("Answerable(%q) = %v, want %v", reply, got, want)
		}
	}
}

// TestRefusesHarmfulReplies: a discovery request whose reply subject is a
// mesh call, JetStream, KV, system or service-import subject gets no
// answer there; any other inbox gets one.
func TestRefusesHarmfulReplies(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	r, err := Start(nc, Config{Name: "orders", Endpoints: []*Endpoint{{Name: "orders", Subject: "mesh.orders._.>", QueueGroup: "orders"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	raw := meshtest.Conn(t, b)
	bad := []string{
		"mesh.payments._.orders.http.POST",
		"$JS.API.STREAM.CREATE.PWN",
		"$KV.natsmesh-policies.mesh",
		"$SYS.REQ.ACCOUNT.PING.CONNZ",
		"_R_.abcdef.ABCDEF",
	}
	leaked := make(chan *nats.Msg, 3*len(bad))
	for _, subj := range bad {
		sub, err := raw.Subscribe(subj, func(m *nats.Msg) { leaked <- m })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	good := []string{"_INBOX.probe", "_INBOX_mesh.admin.SRV.probe"}
	answers, err := raw.SubscribeSync("_INBOX.>")
	if err != nil {
		t.Fatal(err)
	}
	defer answers.Unsubscribe()
	meshAnswers, err := raw.SubscribeSync("_INBOX_mesh.>")
	if err != nil {
		t.Fatal(err)
	}
	defer meshAnswers.Unsubscribe()
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		subj, err := micro.ControlSubject(verb, "orders", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, reply := range bad {
			if err := raw.PublishRequest(subj, reply, nil); err != nil {
				t.Fatal(err)
			}
		}
		// Each verb has its own subscription: the good request after the
		// bad ones on the same subject is handled after them.
		for _, reply := range good {
			if err := raw.PublishRequest(subj, reply, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, sub := range []*nats.Subscription{answers, meshAnswers} {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("%s: no answer to a plain inbox: %v", verb, err)
			}
			if len(m.Data) == 0 {
				t.Errorf("%s: an empty answer on %s", verb, m.Subject)
			}
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-leaked:
		t.Fatalf("discovery answered on %q", m.Subject)
	default:
	}
}
