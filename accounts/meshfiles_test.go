package accounts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// meshFiles are the mesh files of the repository (examples and test data,
// found by their "version: 1" line), but for those that are meant not to
// parse (testdata/bad).
func meshFiles(t *testing.T) []string {
	t.Helper()
	version := regexp.MustCompile(`(?m)^version: 1\s*$`)
	var files []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "node_modules" ||
				name == "bad" && filepath.Base(filepath.Dir(path)) == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if version.Match(data) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestInvariantsEveryMeshFile generates every mesh file of the repository
// in both modes and checks the reply model's invariants over every user as
// the broker will read it: the users of nats.conf (server-config mode) and
// of the .creds files' JWTs (operator mode), which must also be exactly
// what Users returns.
func TestInvariantsEveryMeshFile(t *testing.T) {
	files := meshFiles(t)
	checked := 0
	// testSpec too: it has accounts, exports and calls across them.
	for _, path := range append([]string{"testSpec"}, files...) {
		name, _ := strings.CutPrefix(filepath.ToSlash(path), "../")
		t.Run(name, func(t *testing.T) {
			spec := testSpec()
			if path != "testSpec" {
				spec = parseMeshFile(t, path)
			}
			users, err := spec.Users()
			if errors.Is(err, ErrInvariant) {
				t.Fatal(err)
			}
			if err != nil {
				// Not a configuration accounts can generate (a mesh file
				// for other tests); nothing to check.
				t.Skipf("no accounts configuration: %v", err)
			}
			checked++
			for _, mode := range []struct {
				name   string
				opts   []Option
				render func(t *testing.T, dir string, users []User) []User
			}{
				{"server config", nil, configUsers},
				{"operator", []Option{WithOperator()}, jwtUsers},
			} {
				t.Run(mode.name, func(t *testing.T) {
					dir := generated(t, spec, mode.opts...)
					got := mode.render(t, dir, users)
					if err := CheckUsers(got); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, users) {
						t.Fatalf("the generated users differ from Users():\n got %+v\nwant %+v", got, users)
					}
				})
			}
		})
	}
	shop := filepath.Join("..", "examples", "shop", "mesh.yaml")
	if !slices.Contains(files, shop) || checked < 3 {
		t.Fatalf("checked %d of the mesh files %v; want the shop's and others", checked, files)
	}
}

// configUsers reads the users of DIR/nats.conf as nats-server does, named
// by the NKeys of want's seed files.
func configUsers(t *testing.T, dir string, want []User) []User {
	t.Helper()
	opts, err := server.ProcessConfigFile(ConfigFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != len(want) {
		t.Fatalf("%d NKey users in the config, want %d", len(opts.Nkeys), len(want))
	}
	var users []User
	for _, w := range want {
		pub := seedPublicKey(t, SeedFile(dir, w.Name))
		i := slices.IndexFunc(opts.Nkeys, func(u *server.NkeyUser) bool { return u.Nkey == pub })
		if i < 0 {
			t.Fatalf("%s: key %s not in the config", w.Name, pub)
		}
		nu := opts.Nkeys[i]
		u := User{Name: w.Name, Account: nu.Account.Name}
		if p := nu.Permissions; p != nil {
			u.Perms = &Permissions{}
			if p.Publish != nil {
				u.Perms.Publish = p.Publish.Allow
				if len(p.Publish.Deny) > 0 {
					t.Fatalf("%s: publish deny %v", w.Name, p.Publish.Deny)
				}
			}
			if p.Subscribe != nil {
				u.Perms.Subscribe = p.Subscribe.Allow
				if len(p.Subscribe.Deny) > 0 {
					t.Fatalf("%s: subscribe deny %v", w.Name, p.Subscribe.Deny)
				}
			}
			if r := p.Response; r != nil {
				u.Perms.Responses = &Responses{MaxMsgs: r.MaxMsgs, Expires: r.Expires}
			}
		}
		users = append(users, u)
	}
	return users
}

func seedPublicKey(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return pub
}

// jwtUsers reads the users of want from their operator-mode .creds files:
// the permissions of each user JWT, and its account by the account JWT of
// the key that signed it.
func jwtUsers(t *testing.T, dir string, want []User) []User {
	t.Helper()
	accountOf := map[string]string{} // account public key -> name
	entries, err := os.ReadDir(filepath.Join(dir, "accounts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".jwt"); ok {
			data, err := os.ReadFile(filepath.Join(dir, "accounts", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			ac, err := jwt.DecodeAccountClaims(string(data))
			if err != nil {
				t.Fatal(err)
			}
			accountOf[ac.Subject] = name
		}
	}
	var users []User
	for _, w := range want {
		data, err := os.ReadFile(CredsFile(dir, w.Name))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseDecoratedJWT(data)
		if err != nil {
			t.Fatal(err)
		}
		uc, err := jwt.DecodeUserClaims(tok)
		if err != nil {
			t.Fatal(err)
		}
		if len(uc.Pub.Deny) > 0 || len(uc.Sub.Deny) > 0 {
			t.Fatalf("%s: deny lists %v %v", w.Name, uc.Pub.Deny, uc.Sub.Deny)
		}
		u := User{Name: uc.Name, Account: accountOf[uc.Issuer]}
		if len(uc.Pub.Allow) > 0 || len(uc.Sub.Allow) > 0 || uc.Resp != nil {
			u.Perms = &Permissions{Publish: []string(uc.Pub.Allow), Subscribe: []string(uc.Sub.Allow)}
			if r := uc.Resp; r != nil {
				u.Perms.Responses = &Responses{MaxMsgs: r.MaxMsgs, Expires: r.Expires}
			}
		}
		users = append(users, u)
	}
	return users
}
