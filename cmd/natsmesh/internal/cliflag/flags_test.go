package cliflag

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClosest(t *testing.T) {
	names := []string{"admin", "bind", "grpc-proxy", "proxy", "service", "service-version", "upstream", "listen", "nats", "nkey"}
	for _, tc := range []struct{ in, want string }{
		{"upstrem", "upstream"},
		{"upstraem", "upstream"},
		{"servce", "service"},
		{"lisen", "listen"},
		{"grpc-prxy", "grpc-proxy"},
		{"upstr", "upstream"}, // a prefix
		{"nat", "nats"},
		{"frobnicate", ""},
		{"x", ""},
		{"http", ""},
	} {
		if got := Closest(tc.in, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if d := levenshtein("kitten", "sitting"); d != 3 {
		t.Errorf("levenshtein(kitten, sitting) = %d, want 3", d)
	}
}

// TestParse: the command line wins over the command's variable, which wins
// over the shared one (only the NATS connection flags have one); a list
// from the environment is replaced, not extended, by the command line; a
// deprecated name sets its target and warns; errors are one line.
func TestParse(t *testing.T) {
	t.Setenv("NATSMESH_NATS", "nats://shared")
	t.Setenv("NATSMESH_TIMEOUT", "9s") // not shared: not read
	t.Setenv("NATSMESH_CMD_SERVICE", "from-env")
	t.Setenv("NATSMESH_CMD_ROUTE", "a,b")
	var out strings.Builder
	newSet := func() (*flag.FlagSet, *string, *string, *string, *List) {
		fs := NewSet("cmd", "", "", &out)
		nats := fs.String("nats", "", "")
		service := fs.String("service", "", "")
		timeout := fs.String("timeout", "1s", "")
		var routes List
		fs.Var(&routes, "route", "")
		Deprecate(fs, "name", "service")
		return fs, nats, service, timeout, &routes
	}
	fs, nats, service, timeout, routes := newSet()
	if err := Parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if *nats != "nats://shared" || *service != "from-env" || *timeout != "1s" || strings.Join(routes.Values, " ") != "a b" {
		t.Fatalf("from the environment: nats %q service %q timeout %q routes %q", *nats, *service, *timeout, routes.Values)
	}
	if !strings.Contains(out.String(), "NATSMESH_TIMEOUT is not read") {
		t.Errorf("no warning about the unscoped variable: %q", out.String())
	}
	t.Setenv("NATSMESH_CMD_NATS", "nats://own")
	fs, nats, service, _, routes = newSet()
	if err := Parse(fs, []string{"--name", "from-flag", "--route", "c"}); err != nil {
		t.Fatal(err)
	}
	if *nats != "nats://own" || *service != "from-flag" || strings.Join(routes.Values, " ") != "c" || !IsSet(fs, "service") || IsSet(fs, "timeout") {
		t.Fatalf("nats %q service %q routes %q", *nats, *service, routes.Values)
	}
	if !strings.Contains(out.String(), "--name is deprecated; use --service") {
		t.Errorf("no deprecation warning: %q", out.String())
	}
	fs, _, _, _, _ = newSet()
	if err := Parse(fs, []string{"--servce", "x"}); err == nil || err.Error() != "cmd: unknown flag --servce: did you mean --service?" {
		t.Fatalf("unknown flag: %v", err)
	}
}

// TestApplyConfigFile: the file sets what the command line left unset, a
// list from a YAML sequence, and names an unknown key.
func TestApplyConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.yaml")
	if err := os.WriteFile(path, []byte("service: from-file\ntimeout: 5s\nroute: [a, b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := NewSet("cmd", "", "", io.Discard)
	service := fs.String("service", "", "")
	timeout := fs.String("timeout", "1s", "")
	var routes List
	fs.Var(&routes, "route", "")
	config := ConfigFlag(fs)
	if err := Parse(fs, []string{"--config", path, "--service", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfigFile(fs, *config); err != nil {
		t.Fatal(err)
	}
	if *service != "from-flag" || *timeout != "5s" || strings.Join(routes.Values, " ") != "a b" {
		t.Fatalf("service %q timeout %q routes %q", *service, *timeout, routes.Values)
	}
	if err := os.WriteFile(path, []byte("servce: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfigFile(NewSet("cmd", "", "", io.Discard), path); err == nil || !strings.Contains(err.Error(), `unknown setting "servce"`) {
		t.Fatalf("unknown key: %v", err)
	}
}
