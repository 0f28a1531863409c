package accounts

import (
	"errors"
	"testing"
)

// TestResponsesAgainstEveryPublisher: a user with response permissions is
// checked against every other user that may publish into what it
// subscribes, in its own account or another, but itself (checked apart),
// the system user and an unrestricted one.
func TestResponsesAgainstEveryPublisher(t *testing.T) {
	u := User{Name: "admin", Account: StoreAccount, Perms: &Permissions{Subscribe: []string{"work.>"}, Publish: []string{"out.>"}}}
	for _, tc := range []struct {
		name  string
		other User
		bad   bool
	}{
		{"same account, another user", User{Name: "worker", Account: StoreAccount, Perms: &Permissions{Publish: []string{"work.a"}}}, true},
		{"another account, same name", User{Name: "admin", Account: "mesh", Perms: &Permissions{Publish: []string{"work.a"}}}, true},
		{"another account", User{Name: "web", Account: "mesh", Perms: &Permissions{Publish: []string{"work.>"}}}, true},
		{"publishing elsewhere", User{Name: "web", Account: "mesh", Perms: &Permissions{Publish: []string{"other.>"}}}, false},
		{"the system user", User{Name: "sys", Account: SystemAccount, Perms: &Permissions{Publish: []string{"work.a"}}}, false},
		{"an unrestricted user", User{Name: "root", Account: "mesh"}, false},
		{"itself", u, false},
	} {
		err := checkResponses(u, []User{u, tc.other})
		if bad := errors.Is(err, ErrInvariant); bad != tc.bad {
			t.Errorf("%s: %v, want refused %v", tc.name, err, tc.bad)
		}
	}
}
