package wire

import (
	"errors"
	"strings"
	"testing"
)

// TestSubjectOp: the protocol and operation of a six-token mesh subject,
// its operation unescaped; nothing for anything else.
func TestSubjectOp(t *testing.T) {
	for _, tc := range []struct {
		subject string
		proto   Proto
		op      string
		ok      bool
	}{
		{"mesh.orders._.web.http.GET", ProtoHTTP, "GET", true},
		{"mesh.orders.v2.web.grpc." + EscapeToken("/pkg.Svc/Do"), ProtoGRPC, "/pkg.Svc/Do", true},
		{"mesh.orders._.web.http", "", "", false},
		{"mesh.orders._.web.http.GET.x", "", "", false},
		{"other.orders._.web.http.GET", "", "", false},
		{"mesh.orders._.web.http.%2x", "", "", false},
	} {
		proto, op, ok := SubjectOp(tc.subject)
		if proto != tc.proto || op != tc.op || ok != tc.ok {
			t.Errorf("SubjectOp(%q) = %q, %q, %v; want %q, %q, %v", tc.subject, proto, op, ok, tc.proto, tc.op, tc.ok)
		}
	}
}

// TestValidateNameEdges: each end of each byte range, a dash only inside,
// and an upper-case name told its lower-case form when that one is valid.
func TestValidateNameEdges(t *testing.T) {
	for _, name := range []string{"a", "z", "0", "9", "a-z", "a0-9z", strings.Repeat("a", maxNameLen)} {
		if err := ValidateName("service", name); err != nil {
			t.Errorf("ValidateName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "-a", "a-", "-", "a_b", "a.b", "`", "{", "/", ":", "a@", strings.Repeat("a", maxNameLen+1)} {
		if err := ValidateName("service", name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want invalid", name, err)
		}
	}
	if err := ValidateName("service", "Orders"); err == nil || !strings.Contains(err.Error(), `use "orders"`) {
		t.Errorf(`ValidateName("Orders") = %v, want it to name "orders"`, err)
	}
	for _, name := range []string{"A", "Z", "AZ"} {
		if err := ValidateName("service", name); err == nil || !strings.Contains(err.Error(), "lower case") {
			t.Errorf("ValidateName(%q) = %v, want it told lower case", name, err)
		}
	}
	if err := ValidateName("service", "A_B"); err == nil || strings.Contains(err.Error(), "use ") {
		t.Errorf(`ValidateName("A_B") = %v: suggests a name that is not valid either`, err)
	}
}

// TestEscapeTokenSafeBytes: letters, digits, "-" and "_" travel as they
// are, each end of their ranges included; the bytes beside them do not.
func TestEscapeTokenSafeBytes(t *testing.T) {
	if got := EscapeToken("azAZ09-_"); got != "azAZ09-_" {
		t.Errorf("EscapeToken(safe bytes) = %q", got)
	}
	if got := EscapeToken("`{@[/:"); got != "%60%7B%40%5B%2F%3A" {
		t.Errorf("EscapeToken(the bytes beside them) = %q", got)
	}
}

// TestSubjectStringAllocs: a subject is built in one allocation, its size
// computed up front. (50 bytes: just above an allocation size class, 48,
// so that a size computed even 5 bytes short costs a second allocation.)
func TestSubjectStringAllocs(t *testing.T) {
	s := Subject{Service: "orders-service", Subset: "canary", Caller: "frontend-ab", Proto: ProtoHTTP, Op: "DELETE"}
	if n := len(s.String()); n != 50 {
		t.Fatalf("the subject has %d bytes, want 50", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.String() }); n != 1 {
		t.Errorf("Subject.String: %v allocations, want 1", n)
	}
}

// TestUnescapeTokenNoCopy: a token with no escape is its own string, read
// without an allocation.
func TestUnescapeTokenNoCopy(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if s, err := UnescapeToken("GET"); err != nil || s != "GET" {
			t.Fatal(s, err)
		}
	}); n != 0 {
		t.Errorf("UnescapeToken of a plain token: %v allocations, want 0", n)
	}
}

func TestLiteralSubject(t *testing.T) {
	for _, ok := range []string{"a", "a.b", "_INBOX_mesh.web.orders.x-1", "!", "~.~", "\x80"} {
		if !LiteralSubject(ok) {
			t.Errorf("LiteralSubject(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", ".", ".a", "a.", "a..b", "a b", "a\tb", "a\x00", "a\x1f", " ", "a\x7f", "a.*", "*", "a.>", ">", "a*"} {
		if LiteralSubject(bad) {
			t.Errorf("LiteralSubject(%q) = true", bad)
		}
	}
}
