package accounts

import (
	"errors"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/wire"
)

// TestAccountDeclaredTwice: an account may not be declared twice, but the
// default one, which every mesh has anyway.
func TestAccountDeclaredTwice(t *testing.T) {
	spec := testSpec()
	spec.Accounts = append(spec.Accounts, Account{Name: "other"})
	if _, err := spec.Users(); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("other declared twice: %v, want ErrSpec saying so", err)
	}
	spec = testSpec()
	spec.Accounts = append(spec.Accounts, Account{Name: DefaultAccount}, Account{Name: DefaultAccount})
	if _, err := spec.Users(); err != nil {
		t.Errorf("the default account declared twice: %v", err)
	}
}

// TestMethodOpLetters: an HTTP method is upper-case letters, A and Z
// included; the bytes beside them are refused.
func TestMethodOpLetters(t *testing.T) {
	for _, m := range []string{"A", "Z", "AZ", "PATCH"} {
		if proto, op, err := methodOp(m); err != nil || proto != string(wire.ProtoHTTP) || op != m {
			t.Errorf("methodOp(%q) = %q, %q, %v", m, proto, op, err)
		}
	}
	for _, m := range []string{"@", "[", "a", "GET1", "G-T"} {
		if _, _, err := methodOp(m); err == nil {
			t.Errorf("methodOp(%q) accepted", m)
		}
	}
}
