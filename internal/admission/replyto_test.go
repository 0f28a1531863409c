package admission

import (
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/wire"
)

func TestReplyAllowed(t *testing.T) {
	const subj = "mesh.orders._.web.http.GET"
	for _, tc := range []struct {
		subject, reply string
		want           bool
	}{
		{subj, "_INBOX_mesh.web.orders.abc.1", true},
		{subj, "_INBOX_mesh.web.orders.x", true},
		{"mesh.orders.v2.web.grpc.%2Fa%2EB%2FC", "_INBOX_mesh.web.orders.x", true},
		{"mesh.a-b._.c-d.http.GET", "_INBOX_mesh.c-d.a-b.1", true},
		{subj, "_INBOX_mesh.web.payments.x", false},                       // the caller's, from another service
		{subj, "_INBOX_mesh.web.payments.abc.1", false},                   // idem, a mux's shape
		{subj, "_INBOX_mesh.web.orders", false},                           // no id: the pair is no inbox
		{subj, "_INBOX_mesh.web.orders.", false},                          // empty token
		{subj, "_INBOX_mesh.web.ordersx.1", false},                        // another service's
		{subj, "_INBOX_mesh.web.order.1", false},                          // a prefix of the service
		{subj, "_INBOX_mesh.web.SRV.1", false},                            // a reserved peer
		{subj, "_INBOX_mesh.web.NATS.1", false},                           // idem
		{subj, "_INBOX_mesh.web.x", false},                                // the old caller-only inbox
		{subj, "_INBOX_mesh.web.abc.1", false},                            // idem
		{subj, "_INBOX_mesh.web", false},                                  // the prefix is no inbox
		{subj, "_INBOX_mesh.webx.orders.1", false},                        // another caller's
		{subj, "_INBOX_mesh.orders.web.1", false},                         // the callee's own, from the caller
		{subj, "_INBOX_mesh.orders.orders.1", false},                      // the callee's siblings'
		{subj, "_R_.qewtcb.gHpzLM", false},                                // a service import's reply: none any more
		{subj, "_R_.qewtcb.gHpzLM.NhBXe4Ys.T", false},                     // with latency tracking
		{subj, "_R_.abcdef.ABCDEF", false},                                // idem
		{subj, "_INBOX.abc", false},                                       // nats.go's default
		{subj, "$JS.API.STREAM.CREATE.PWN", false},                        // the confused deputy
		{subj, "$KV.natsmesh-policies.mesh", false},                       // idem
		{subj, "mesh.payments._.orders.http.POST", false},                 // a call as the callee
		{subj, "_INBOX_mesh.web.orders.*", false},                         // wildcards
		{subj, "_INBOX_mesh.web.orders.>", false},                         // idem
		{subj, "_INBOX_mesh.web.*.1", false},                              // idem
		{subj, "_INBOX_mesh.web.orders.a b", false},                       // whitespace
		{subj, "_INBOX_mesh.web.orders..1", false},                        // empty token
		{"mesh.orders._.Web.http.GET", "_INBOX_mesh.Web.orders.1", false}, // not a valid caller
		{"mesh.Orders._.web.http.GET", "_INBOX_mesh.web.Orders.1", false}, // not a valid service
		{"mesh.orders._", "_INBOX_mesh.web.orders.1", false},
		{"mesh.orders._.web", "_INBOX_mesh.web.orders.1", false},
		{"other.orders._.web.http.GET", "_INBOX_mesh.web.orders.1", false},
		{"mesh.orders._.web.http.GET", "", false},
	} {
		if got := ReplyAllowed(tc.subject, tc.reply); got != tc.want {
			t.Errorf("ReplyAllowed(%q, %q) = %v, want %v", tc.subject, tc.reply, got, tc.want)
		}
	}
}

func FuzzReplyAllowed(f *testing.F) {
	f.Add("mesh.orders._.web.http.GET", "_INBOX_mesh.web.orders.abc.1")
	f.Add("mesh.orders._.web.http.GET", "_INBOX_mesh.web.payments.abc.1")
	f.Add("mesh.orders._.web.http.GET", "_INBOX_mesh.web.orders")
	f.Add("mesh.orders._.web.http.GET", "_R_.abcdef.ABCDEF")
	f.Add("mesh.orders._.web.http.GET", "$JS.API.STREAM.CREATE.PWN")
	f.Fuzz(func(t *testing.T, subject, reply string) {
		if !ReplyAllowed(subject, reply) {
			return
		}
		// The reference: the pair inbox, built, and at least one
		// non-empty literal token after it.
		service, caller := callTokens(subject)
		prefix := "_INBOX_mesh." + caller + "." + service + "."
		if caller == "" || service == "" || !strings.HasPrefix(reply, prefix) || len(reply) == len(prefix) ||
			!wire.LiteralSubject(reply) {
			t.Fatalf("allowed %q for %q", reply, subject)
		}
	})
}
