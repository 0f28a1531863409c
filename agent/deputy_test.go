package agent

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestNoConfusedDeputy is the regression test of issue 11: a raw publish
// to httpbin as web, with a reply subject that is not in the pair inbox of
// web and httpbin, must not make httpbin's agent publish its answer there.
// On a JetStream broker, a reply to $JS.API.STREAM.CREATE.PWN would create
// a stream; one to another service's subject would call it as httpbin;
// one to another caller's inbox, or to web's inbox for another service,
// would inject a reply.
func TestNoConfusedDeputy(t *testing.T) {
	b := meshtest.Broker(t) // JetStream on
	var logs meshtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	startAgent(t, b, Config{Service: "httpbin", Logger: log}, func(a *Agent) {
		a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// An answer that is a valid stream configuration.
			w.Write([]byte(`{"name":"PWN","subjects":["pwn.>"]}`))
		}))
	})

	spy := meshtest.Conn(t, b)
	var mu sync.Mutex
	var leaked []string
	for _, s := range []string{"mesh.payments.>", "_INBOX_mesh.orders.>", "_INBOX.>", "_INBOX_mesh.webx.>", "_INBOX_mesh.web",
		"_INBOX_mesh.web.payments.>", "_INBOX_mesh.web.httpbin", "_INBOX_mesh.web.x", "pwn.>", "$JS.API.STREAM.CREATE.>"} {
		if _, err := spy.Subscribe(s, func(m *nats.Msg) {
			mu.Lock()
			leaked = append(leaked, m.Subject)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	web := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.PairInbox("web", "httpbin")))
	call := func(reply string) *nats.Msg {
		return &nats.Msg{Subject: "mesh.httpbin._.web.http.GET", Reply: reply,
			Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}
	}
	for _, reply := range []string{
		"$JS.API.STREAM.CREATE.PWN",
		"mesh.payments._.httpbin.http.POST", // a call as httpbin
		"_INBOX_mesh.orders.x",              // another caller's inbox
		"_INBOX_mesh.webx.x",                // a prefix of web's is not web's
		"_INBOX_mesh.web",                   // the prefix itself is no inbox
		"_INBOX_mesh.web.payments.x",        // web's inbox for another service
		"_INBOX_mesh.web.httpbin",           // the pair itself is no inbox
		"_INBOX_mesh.web.x",                 // web's inbox, no pair
		"_INBOX.x",                          // nats.go's default inbox
	} {
		if err := web.PublishMsg(call(reply)); err != nil {
			t.Fatal(err)
		}
	}
	// The same subscription delivers in order and refuses synchronously:
	// once a call sent afterwards is answered, the forged ones were refused.
	reply, err := web.RequestMsg(call(web.NewRespInbox()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Header.Get(wire.HeaderStatus) != "200" {
		t.Fatalf("legitimate call: %v", reply.Header)
	}
	if err := spy.Flush(); err != nil { // a round trip: anything published has arrived
		t.Fatal(err)
	}
	mu.Lock()
	if len(leaked) > 0 {
		t.Errorf("published to %v", leaked)
	}
	mu.Unlock()

	js, err := jetstream.New(web)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		t.Errorf("stream %q exists", n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if got := logs.String(); !strings.Contains(got, "refused a call whose reply subject") || !strings.Contains(got, "$JS.API.STREAM.CREATE.PWN") {
		t.Errorf("refusal not logged:\n%s", got)
	}
}
