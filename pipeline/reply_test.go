package pipeline

import "testing"

func TestReplyAllowed(t *testing.T) {
	const subj = "mesh.orders._.web.http.GET"
	for _, tc := range []struct {
		subject, reply string
		want           bool
	}{
		{subj, "_INBOX_mesh.web.abc.1", true},
		{subj, "_INBOX_mesh.web.x", true},
		{"mesh.orders.v2.web.grpc.%2Fa%2EB%2FC", "_INBOX_mesh.web.x", true},
		{subj, "_R_.qewtcb.gHpzLM", true},                 // a cross-account call
		{subj, "_R_.qewtcb.gHpzLM.NhBXe4Ys.T", true},      // with latency tracking
		{subj, "_INBOX_mesh.web", false},                  // the prefix is no inbox
		{subj, "_INBOX_mesh.web.", false},                 // empty token
		{subj, "_INBOX_mesh.webx.1", false},               // another caller's
		{subj, "_INBOX_mesh.orders.1", false},             // the callee's own
		{subj, "_INBOX.abc", false},                       // nats.go's default
		{subj, "$JS.API.STREAM.CREATE.PWN", false},        // the confused deputy
		{subj, "mesh.payments._.orders.http.POST", false}, // a call as the callee
		{subj, "_INBOX_mesh.web.*", false},                // wildcards
		{subj, "_INBOX_mesh.web.>", false},
		{subj, "_INBOX_mesh.web.a b", false},
		{subj, "_R_.qewtcb", false},
		{subj, "_R_.qewtc.gHpzLM", false},
		{subj, "_R_.qewtcb.gHpzLM.x.Y", false},
		{subj, "_R_.qew-cb.gHpzLM", false},
		{"mesh.orders._.Web.http.GET", "_INBOX_mesh.Web.1", false}, // not a valid caller
		{"mesh.orders._", "_INBOX_mesh.web.1", false},
		{"other.orders._.web.http.GET", "_INBOX_mesh.web.1", false},
		{"mesh.orders._.web.http.GET", "", false},
	} {
		if got := ReplyAllowed(tc.subject, tc.reply); got != tc.want {
			t.Errorf("ReplyAllowed(%q, %q) = %v, want %v", tc.subject, tc.reply, got, tc.want)
		}
	}
}

func FuzzReplyAllowed(f *testing.F) {
	f.Add("mesh.orders._.web.http.GET", "_INBOX_mesh.web.1")
	f.Add("mesh.orders._.web.http.GET", "_R_.qewtcb.gHpzLM.NhBXe4Ys.T")
	f.Add("mesh.orders._.web.http.GET", "$JS.API.STREAM.CREATE.PWN")
	f.Fuzz(func(t *testing.T, subject, reply string) {
		if !ReplyAllowed(subject, reply) {
			return
		}
		caller := callerToken(subject)
		if !serviceImportReply(reply) && (caller == "" || len(reply) <= len("_INBOX_mesh.")+len(caller)+1 ||
			reply[:len("_INBOX_mesh.")+len(caller)+1] != "_INBOX_mesh."+caller+".") {
			t.Fatalf("allowed %q for %q", reply, subject)
		}
	})
}
