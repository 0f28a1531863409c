package accounts

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestUsersGolden pins the permission sets and the exports of testSpec, so
// that a change of what a user may do is always deliberate: go test -run
// TestUsersGolden -update.
func TestUsersGolden(t *testing.T) {
	spec := testSpec()
	users, err := spec.Users()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s (account %s)\n", u.Name, u.Account)
		if u.Perms == nil {
			b.WriteString("  unrestricted\n")
			continue
		}
		for _, s := range u.Perms.Publish {
			fmt.Fprintf(&b, "  pub %s\n", s)
		}
		for _, s := range u.Perms.Subscribe {
			fmt.Fprintf(&b, "  sub %s\n", s)
		}
		if r := u.Perms.Responses; r != nil {
			fmt.Fprintf(&b, "  responses max %d expires %v\n", r.MaxMsgs, r.Expires)
		}
	}
	for _, e := range exports(&spec, newGraph(&spec)) {
		kind := "stream"
		if e.service {
			kind = "service"
		}
		fmt.Fprintf(&b, "export %s %s %s -> %s\n", kind, e.subject, e.from, strings.Join(e.to, ", "))
	}
	golden := filepath.Join("testdata", "users.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if b.String() != string(want) {
		t.Fatalf("permissions differ from %s (run with -update to accept):\n%s", golden, b.String())
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"bad service name", func(s *Spec) { s.Services[0].Name = "Web" }, "service name"},
		{"duplicate service", func(s *Spec) { s.Services[1].Name = "web" }, "declared twice"},
		{"reserved name", func(s *Spec) { s.Services[0].Name = Bridge }, "reserved"},
		{"admin name", func(s *Spec) { s.Services[0].Name = DefaultAdmin }, "reserved"},
		{"unknown account", func(s *Spec) { s.Services[0].Account = "nope" }, "not declared"},
		{"system account", func(s *Spec) { s.Accounts = append(s.Accounts, Account{Name: "sys"}) }, "system account"},
		{"store account", func(s *Spec) { s.Accounts = append(s.Accounts, Account{Name: "store"}) }, "policy store"},
		{"unknown caller", func(s *Spec) { s.Services[0].Allow[0].Caller = "nobody" }, "unknown caller"},
		{"bad method", func(s *Spec) { s.Services[1].Allow[0].Methods = []string{"get"} }, "method"},
		{"bad gRPC method", func(s *Spec) { s.Services[1].Allow[0].Methods = []string{"pkg.Svc/"} }, "gRPC method"},
		{"export of a foreign service", func(s *Spec) { s.Accounts[0].Exports[0].Service = "web" }, "which is in account"},
		{"export to nobody", func(s *Spec) { s.Accounts[0].Exports[0].To = nil }, "no importing"},
		{"export to unknown account", func(s *Spec) { s.Accounts[0].Exports[0].To = []string{"nope"} }, "undeclared account"},
		// A cross-account caller needs the export: without it the allow
		// rule could never work, so generating it is an error.
		{"caller without export", func(s *Spec) { s.Accounts[0].Exports = nil }, "does not export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			tc.edit(&spec)
			_, err := spec.Users()
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSpec mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaultDeny(t *testing.T) {
	spec := Spec{Default: Deny, Services: []Service{{Name: "a"}, {Name: "b", Allow: []Rule{{Caller: "a"}}}}}
	users, err := spec.Users()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range users[1].Perms.Publish { // b
		if strings.HasPrefix(s, "mesh.") {
			t.Fatalf("b may call %s, but a has no allow list and the default is deny", s)
		}
	}
	if got := users[0].Perms.Publish[0]; got != "mesh.b.*.a.>" {
		t.Fatalf("a's first publish permission %q, want mesh.b.*.a.>", got)
	}
}
