package accounts

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIntersects(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a.b", "a", false},
		{"a", "*", true},
		{"a", ">", true},
		{"a.b", ">", true},
		{"a", "a.>", false}, // ">" wants at least one token
		{"a.b", "a.>", true},
		{"a.b.c", "a.*", false},
		{"a.*", "*.b", true},
		{"a.*.c", "*.b.d", false},
		{"$SRV.STATUS.web", "$SRV.*.web", true},
		{"$SRV.STATUS.web", "$SRV.*.web.*", false},
		{"_INBOX_mesh.web.orders.>", "_INBOX_mesh.web.>", true},
		{"_INBOX_mesh.web.orders.>", "_INBOX.>", false},
		{"_INBOX_mesh.admin.SRV.>", "_INBOX_mesh.*.web.>", false},
		{"mesh.orders.*.web.http.GET", "mesh.orders._.>", true},
		{"mesh.orders.*.web.http.GET", "mesh.orders.v1.> orders.v1", false}, // the queue is part of the last token here
		{"$JS.API.DIRECT.GET.KV_natsmesh-policies.>", "$JS.>", true},
		{"$KV.natsmesh-policies.>", "$JS.>", false},
		{"a*", "ab", false}, // not a wildcard
		{"a*", "*", true},
	} {
		if got := intersects(tc.a, tc.b); got != tc.want {
			t.Errorf("intersects(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := intersects(tc.b, tc.a); got != tc.want {
			t.Errorf("intersects(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestSubsetOf(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"a", "a", true},
		{"a", "*", true},
		{"*", "a", false},
		{"a.b", ">", true},
		{">", "a.>", false},
		{"a.>", "a.>", true},
		{"a.>", "a.*", false},
		{"a.*", "a.>", true},
		{"a", "a.>", false},
		{"$JS.API.DIRECT.GET.KV_natsmesh-policies.>", "$JS.API.DIRECT.GET.KV_natsmesh-policies.>", true},
		{"$JS.API.>", "$JS.API.DIRECT.GET.KV_natsmesh-policies.>", false},
		{"mesh.orders.*.web.http.GET", "mesh.*.*.web.>", true},
		{"mesh.orders.*.*.>", "mesh.*.*.web.>", false},
		{"_INBOX_mesh.web.orders.>", "_INBOX_mesh.*.orders.>", true},
	} {
		if got := subsetOf(tc.a, tc.b); got != tc.want {
			t.Errorf("subsetOf(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestSubjectPatternsExhaustive compares intersects, subsetOf and meet with their
// definitions, by enumerating subjects, over every pattern of up to three
// tokens from a, b, * and >.
func TestSubjectPatternsExhaustive(t *testing.T) {
	var patterns []string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) == 3 {
			return
		}
		for _, tok := range []string{"a", "b", "*", ">"} {
			p := append(slices.Clone(prefix), tok)
			patterns = append(patterns, strings.Join(p, "."))
			if tok != ">" {
				grow(p)
			}
		}
	}
	grow(nil)
	for _, a := range patterns {
		for _, b := range patterns {
			checkPatterns(t, a, b)
		}
	}
}

// FuzzSubjectPatterns compares intersects and subsetOf with their
// definitions on patterns of up to four tokens.
func FuzzSubjectPatterns(f *testing.F) {
	for _, seed := range [][2]string{
		{"a.*.c", "a.b.>"},
		{"mesh.*.*.web.>", "mesh.orders.*.web.http.GET"},
		{"$SRV.*.web", "$SRV.STATUS.web"},
		{">", "a"},
		{"a.>", "a"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !validPattern(a) || !validPattern(b) || strings.Count(a, ".") > 3 || strings.Count(b, ".") > 3 {
			t.Skip()
		}
		checkPatterns(t, a, b)
	})
}

func validPattern(p string) bool {
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") || tok == ">" && i != len(toks)-1 {
			return false
		}
	}
	return true
}

// checkPatterns checks intersects(a, b) and subsetOf(a, b) against the
// subjects they match: every subject of up to one token more than the
// longer pattern, from the patterns' literal tokens and one other, which
// is enough to find a witness when there is one.
func checkPatterns(t *testing.T, a, b string) {
	t.Helper()
	alphabet := []string{"other"}
	for _, tok := range append(strings.Split(a, "."), strings.Split(b, ".")...) {
		if tok != "*" && tok != ">" && !slices.Contains(alphabet, tok) {
			alphabet = append(alphabet, tok)
		}
	}
	maxLen := max(strings.Count(a, "."), strings.Count(b, ".")) + 2
	both, aNotB := false, false
	m, met := meet(a, b)
	var walk func(subject []string)
	walk = func(subject []string) {
		if len(subject) > 0 {
			ma, mb := matches(a, subject), matches(b, subject)
			both = both || ma && mb
			aNotB = aNotB || ma && !mb
			if met && matches(m, subject) != (ma && mb) {
				t.Errorf("meet(%q, %q) = %q, which matches %q: %v; a and b both: %v", a, b, m, strings.Join(subject, "."), !(ma && mb), ma && mb)
			}
		}
		if len(subject) == maxLen {
			return
		}
		for _, tok := range alphabet {
			walk(append(subject, tok))
		}
	}
	walk(nil)
	if got := intersects(a, b); got != both {
		t.Errorf("intersects(%q, %q) = %v, but a common subject exists: %v", a, b, got, both)
	}
	if met != both {
		t.Errorf("meet(%q, %q) found a meet: %v, but a common subject exists: %v", a, b, met, both)
	}
	if got := subsetOf(a, b); got != !aNotB {
		t.Errorf("subsetOf(%q, %q) = %v, but a subject of a outside b exists: %v", a, b, got, aNotB)
	}
}

// matches is the definition of a pattern matching a literal subject.
func matches(pattern string, subject []string) bool {
	p := strings.Split(pattern, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(subject) > i
		}
		if i >= len(subject) || tok != "*" && tok != subject[i] {
			return false
		}
	}
	return len(subject) == len(p)
}

func TestCheckUsers(t *testing.T) {
	users := func(t *testing.T) []User {
		spec := testSpec()
		us, err := spec.Users()
		if err != nil {
			t.Fatal(err)
		}
		return us
	}
	user := func(us []User, name string) *User {
		i := slices.IndexFunc(us, func(u User) bool { return u.Name == name })
		return &us[i]
	}
	respond := &Responses{MaxMsgs: 1, Expires: time.Minute}
	for _, tc := range []struct {
		name string
		edit func(us []User)
		want string // "" for no error
	}{
		{"generated", func([]User) {}, ""},
		{"responses with a subject published and subscribed", func(us []User) {
			user(us, "web").Perms.Responses = respond
		}, `"web" (account mesh) has response permissions and may both publish "_INBOX_mesh.web.web.>" and subscribe "_INBOX_mesh.web.>"`},
		{"admin with responses and a loop", func(us []User) {
			a := user(us, DefaultAdmin)
			a.Perms.Responses = respond
			a.Perms.Subscribe = slices.DeleteFunc(a.Perms.Subscribe, func(s string) bool { return strings.HasPrefix(s, "$KV.") })
			a.Perms.Publish = append(a.Perms.Publish, "_INBOX.>")
		}, `"admin" (account STORE) has response permissions and may both publish "_INBOX.>" and subscribe "_INBOX.>"`},
		{"admin with responses and the bucket's writes", func(us []User) {
			user(us, DefaultAdmin).Perms.Responses = respond
		}, `"admin" (account STORE) has response permissions and may both publish "$KV.natsmesh-policies.>" and subscribe "$KV.natsmesh-policies.>"`},
		// No loop of its own, but every service may publish into the
		// admin's discovery inbox (it crosses to STORE by the services'
		// exports) with any reply subject, which a response grant would
		// let the admin's client publish to in STORE: $JS.API.STREAM.PURGE...
		{"admin with responses and an inbox services publish into", func(us []User) {
			a := user(us, DefaultAdmin)
			a.Perms.Responses = respond
			a.Perms.Subscribe = slices.DeleteFunc(a.Perms.Subscribe, func(s string) bool { return strings.HasPrefix(s, "$KV.") })
		}, `"admin" (account STORE) has response permissions and subscribes "_INBOX_mesh.admin.>", which "web" (account mesh) may publish "_INBOX_mesh.admin.SRV.>" into`},
		{"admin with responses and only what nobody else publishes", func(us []User) {
			a := user(us, DefaultAdmin)
			a.Perms.Responses = respond
			a.Perms.Subscribe = []string{"_INBOX.>"}
		}, ""},
		{"service with responses", func(us []User) {
			p := user(us, "payments").Perms
			p.Responses = respond
			p.Publish = slices.DeleteFunc(p.Publish, func(s string) bool { return strings.HasPrefix(s, "$SRV.") })
		}, `"payments" (account mesh) has response permissions`},
		{"unrestricted service", func(us []User) { user(us, "web").Perms = nil }, `"web" (account mesh) is unrestricted`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			us := users(t)
			tc.edit(us)
			checkErr(t, CheckUsers(us), tc.want)
		})
	}

	// What a service or the bridge may publish.
	for _, tc := range []struct {
		user, publish, want string
	}{
		{"orders", "$KV." + PoliciesBucket + ".mesh", `reaches "$KV.>"`},
		{"orders", "$JS.API.STREAM.INFO.KV_" + PoliciesBucket, `reaches "$JS.>"`},
		{"orders", "$JS.API.CONSUMER.CREATE.KV_" + PoliciesBucket + ".>", `reaches "$JS.>"`},
		{"orders", "$JS.API.>", `reaches "$JS.>"`},
		{"orders", "$JS.API.DIRECT.GET.KV_" + PoliciesBucket, `reaches "$JS.>"`}, // by sequence: not granted
		{"orders", "$JS.API.DIRECT.GET.KV_other.>", `reaches "$JS.>"`},
		{"orders", "$JS.FC.KV_" + PoliciesBucket + ".>", `reaches "$JS.>"`},
		{"orders", "$SYS.REQ.SERVER.PING", `reaches "$SYS.>"`},
		{"orders", "_R_.>", `reaches "_R_.>"`},
		{"orders", "_INBOX.>", `reaches "_INBOX.>"`},
		{"orders", ">", `reaches "$JS.>"`},
		{"orders", "*.>", `reaches "$JS.>"`},
		{"orders", "mesh.payments.*.web.>", "outside"},      // a call as web
		{"orders", "mesh.*.*.*.>", "outside"},               // calls as anyone
		{"orders", "_INBOX_mesh.web.payments.>", "outside"}, // payments' replies to web
		{"orders", "_INBOX_mesh.web.*.>", "outside"},
		{"orders", "_INBOX_mesh.admin.>", "outside"},
		{"orders", "_INBOX_mesh.web.SRV.>", "outside"}, // web asks no discovery
		{"orders", "$SRV.PING", "outside"},
		{"orders", "$SRV.STATUS.payments", "outside"},
		{Bridge, "$SRV.>", "outside"},
		{Bridge, "mesh.orders.*.web.>", "outside"},
		// Allowed, though not generated: the invariant is the reply
		// model, not the allow lists.
		{"orders", "mesh.*.*.orders.>", ""},
		{"orders", "_INBOX_mesh.*.orders.>", ""},
		{"orders", "_INBOX_mesh.admin.SRV.x", ""},
		{Bridge, "$SRV.PING", ""},
	} {
		t.Run(tc.user+" publishes "+tc.publish, func(t *testing.T) {
			us := users(t)
			p := user(us, tc.user).Perms
			p.Publish = append(p.Publish, tc.publish)
			want := tc.want
			if want != "" {
				want = `"` + tc.user + `" (account mesh) may publish "` + tc.publish + `"`
			}
			err := CheckUsers(us)
			checkErr(t, err, want)
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v: want it to say %q", err, tc.want)
			}
		})
	}

	// What a service or the bridge may subscribe.
	for _, tc := range []struct {
		user, subscribe string
		ok              bool
	}{
		{"orders", "_INBOX_mesh.>", false},              // every caller's replies
		{"orders", "_INBOX_mesh.web.>", false},          // web's replies
		{"orders", "_INBOX_mesh.*.>", false},            // anyone's
		{"orders", "mesh.>", false},                     // every call, no queue group
		{"orders", "mesh.orders._.>", false},            // a plain copy of its own calls
		{"orders", "mesh.orders.v1.>", false},           // of its subset's
		{"orders", "mesh.orders._.> orders.spy", false}, // the spy group of issue 16
		{"orders", "mesh.orders._.> orders.*", false},
		{"orders", "mesh.orders._.> *", false},
		{"orders", "mesh.orders.v1.> orders", false}, // a subset's calls in the any-subset group
		{"orders", "mesh.orders.*.> orders", false},
		{"orders", "mesh.orders.> orders", false},
		{"orders", "mesh.payments._.> payments", false}, // another service's group
		{"orders", "mesh.*._.> orders", false},
		{"orders", "$KV.>", false}, // every bucket's writes
		{"orders", "$KV.other.>", false},
		{"orders", "$SRV.>", false}, // discovery as anyone
		{"orders", "$SRV.INFO.payments", false},
		{"orders", "$SRV.STATUS.payments", false},
		{"orders", "$JS.API.>", false},
		{"orders", "_INBOX.>", false},
		{"orders", ">", false},
		{Bridge, "mesh.orders._.> orders", false},
		{Bridge, "_INBOX_mesh.web.>", false},
		{"orders", "mesh-inst.orders.>", false}, // a plain copy of the calls addressed to its instances
		{"orders", "mesh-inst.orders.X.>", false},
		{"orders", "mesh-inst.orders.> orders.spy", false},
		{"orders", "mesh-inst.payments.> payments", false}, // another's instances
		{"orders", "mesh-inst.> orders", false},
		{"orders", "mesh-inst.*.> orders", false},
		{Bridge, "mesh-inst.orders.> orders", false},
		// Allowed, though not generated.
		{"orders", "mesh.orders._.web.> orders", true},
		{"orders", "mesh.orders.v3.> orders.v3", true}, // whether v3 exists is the mesh file's
		{"orders", "_INBOX_mesh.orders.web.>", true},
		{"orders", "$SRV.STATUS.orders", true},
		{"orders", "mesh-inst.orders.X.> orders", true},
		{"orders", "$SRV.STATUS.orders.web", true}, // its callers' census
		{"orders", "$KV." + PoliciesBucket + ".mesh", true},
		{Bridge, "_INBOX_mesh.bridge.SRV.>", true},
	} {
		t.Run(tc.user+" subscribes "+tc.subscribe, func(t *testing.T) {
			us := users(t)
			p := user(us, tc.user).Perms
			p.Subscribe = append(p.Subscribe, tc.subscribe)
			want := ""
			if !tc.ok {
				want = `"` + tc.user + `" (account mesh) may subscribe "` + tc.subscribe + `", outside`
			}
			checkErr(t, CheckUsers(us), want)
		})
	}

	// A user built by hand in the store account is an admin: its
	// discovery answers' inbox is allowed, another's not.
	t.Run("other admin", func(t *testing.T) {
		us := users(t)
		us = append(us, User{Name: "ops", Account: StoreAccount, Perms: &Permissions{Publish: []string{"$SRV.>"}}})
		p := user(us, "orders").Perms
		p.Publish = append(p.Publish, "_INBOX_mesh.ops.SRV.>")
		checkErr(t, CheckUsers(us), "")
		us[len(us)-1].Account = DefaultAccount
		checkErr(t, CheckUsers(us), `"orders" (account mesh) may publish "_INBOX_mesh.ops.SRV.>"`)
	})
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(err, ErrInvariant) || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want ErrInvariant and ErrSpec mentioning %q", err, want)
	}
}

// TestOverlap: what each generated service may both publish and subscribe
// in the shop (with no response permissions, nothing it may use; see
// securitytest.TestSelfGrant).
func TestOverlap(t *testing.T) {
	spec := testSpec()
	users, err := spec.Users()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Name != "orders" {
			continue
		}
		got := Overlap(u.Perms)
		want := []string{"_INBOX_mesh.orders.orders.>", "$SRV.STATUS.orders"}
		if !slices.Equal(got, want) {
			t.Errorf("Overlap(orders) = %q, want %q", got, want)
		}
	}
	p := &Permissions{Publish: []string{"a.*", "b.>", "c"}, Subscribe: []string{"*.x q", "b.y.>", "a.>"}}
	if got, want := Overlap(p), []string{"a.x", "a.*", "b.x", "b.y.>"}; !slices.Equal(got, want) {
		t.Errorf("Overlap(%v) = %q, want %q", p, got, want)
	}
}
