package policies

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestBadFiles parses each testdata/bad/*.yaml file, whose first line reads
// "# want: <text>", and expects an error containing that text.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line %q is not \"# want: ...\"", first)
			}
			f, err := ParseFile(path)
			if err == nil {
				t.Fatalf("parsed, want an error containing %q", want)
			}
			if f != nil {
				t.Errorf("returned a file with the error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not match ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), "policies: "+want) {
				t.Errorf("error:\n  %s\nwant it to contain:\n  policies: %s", err, want)
			}
		})
	}
}

func TestGoodFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	files = append(files, "../examples/shop/mesh.yaml")
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The canonical JSON reads back as the same file.
			js, err := f.JSON()
			if err != nil {
				t.Fatal(err)
			}
			g, err := Parse("canonical.json", js)
			if err != nil {
				t.Fatalf("canonical JSON does not parse: %v\n%s", err, js)
			}
			if changes := Diff(f, g); len(changes) > 0 {
				t.Errorf("canonical JSON differs from the file: %v", changes)
			}
			y, err := f.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse("canonical.yaml", y); err != nil {
				t.Fatalf("canonical YAML does not parse: %v\n%s", err, y)
			}
		})
	}
}

func TestManyErrors(t *testing.T) {
	_, err := Parse("m.yaml", []byte("version: 1\nservices:\n  orders:\n    subsets: [V1]\n    account: nope\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if es[0].Line != 4 || es[1].Line != 5 {
		t.Errorf("errors not in line order: %v", err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("%v does not match ErrInvalid", err)
	}
}

func TestPolicyMerge(t *testing.T) {
	f := mustParse(t, `
version: 1
defaults:
  timeout: 10s
  retries: { attempts: 2, backoff: 10ms }
  circuit_breaker: { enabled: false }
services:
  orders:
    subsets: [v1, v2]
    policy:
      timeout: 5s
      retries: { backoff: 20ms }
      split: { v1: 100 }
      mirror: { to: orders@v2, percent: 5 }
      fault:
        delay: { percent: 10, duration: 1s }
    routes:
      - name: beta
        split: { v2: 100 }
        policy:
          retries: { attempts: 4 }
          mirror: { to: orders }
          fault:
            abort: { percent: 1, error: overloaded }
      - name: plain
`)
	p := f.Policy("orders", "beta")
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("timeout", p.Timeout.D(), 5*time.Second)
	check("attempts", *p.Retries.Attempts, 4)
	check("backoff", p.Retries.Backoff.D(), 20*time.Millisecond)
	check("max_backoff (built in)", p.Retries.MaxBackoff.D(), 250*time.Millisecond)
	check("breaker enabled", *p.CircuitBreaker.Enabled, false)
	check("breaker window (built in)", p.CircuitBreaker.Window.D(), 10*time.Second)
	check("split v2", p.Split["v2"], 100)
	check("split v1", p.Split["v1"], 0)
	check("mirror to", p.Mirror.To, "orders")
	check("mirror percent (whole, so the default)", *p.Mirror.Percent, Percent(100))
	check("fault delay (kept)", p.Fault.Delay.Duration.D(), time.Second)
	check("fault abort", p.Fault.Abort.Error, "overloaded")

	p = f.Policy("orders", "plain")
	check("plain attempts", *p.Retries.Attempts, 2)
	check("plain split", p.Split["v1"], 100)
	check("plain fault abort", p.Fault.Abort == nil, true)

	p = f.Policy("elsewhere", "")
	check("unknown service timeout", p.Timeout.D(), 10*time.Second)

	// The merged policy shares nothing with the file.
	p = f.Policy("orders", "")
	*p.Timeout = 0
	p.Split["v1"] = 1
	check("file after changing a merged policy", f.Policy("orders", "").Timeout.D(), 5*time.Second)
	check("file split after changing a merged policy", f.Policy("orders", "").Split["v1"], 100)
}

func TestMatchRoute(t *testing.T) {
	f := mustParse(t, `
version: 1
services:
  orders:
    routes:
      - name: beta
        match: { headers: { X-Beta: "1" }, path_prefix: /api }
      - name: api
        match: { path_prefix: /api, methods: [GET, HEAD] }
      - name: below
        match: { path_prefix: /static/ }
      - name: grpc-get
        match: { grpc: pkg.Orders/Get }
      - name: grpc-any
        match: { grpc: "pkg.Orders/*" }
      - name: writes
        match: { methods: [POST] }
`)
	http := func(method, path string, h map[string][]string) MatchInput {
		return MatchInput{Proto: ProtoHTTP, Method: method, Path: path, Header: h}
	}
	grpc := func(m string) MatchInput { return MatchInput{Proto: ProtoGRPC, GRPCMethod: m} }
	for _, tc := range []struct {
		name string
		in   MatchInput
		want string // "" for no route
	}{
		{"prefix itself", http("GET", "/api", nil), "api"},
		{"below prefix", http("GET", "/api/x/y", nil), "api"},
		{"not a segment", http("GET", "/apix", nil), ""},
		{"method not listed", http("DELETE", "/api/x", nil), ""},
		{"first match wins", http("GET", "/api/x", map[string][]string{"X-Beta": {"1"}}), "beta"},
		{"header lower case key", http("PUT", "/api", map[string][]string{"x-beta": {"1"}}), "beta"},
		{"header other value", http("GET", "/api", map[string][]string{"X-Beta": {"2"}}), "api"},
		{"slash prefix matches below", http("GET", "/static/a.css", nil), "below"},
		{"slash prefix not itself", http("GET", "/static", nil), ""},
		{"grpc exact", grpc("/pkg.Orders/Get"), "grpc-get"},
		{"grpc wildcard", grpc("pkg.Orders/List"), "grpc-any"},
		{"grpc other service", grpc("pkg.Other/Get"), ""},
		{"http route not for grpc", MatchInput{Proto: ProtoGRPC, GRPCMethod: "x.Y/Z", Method: "POST"}, ""},
		{"grpc route not for http", http("POST", "/pkg.Orders/Get", nil), "writes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := f.MatchRoute("orders", tc.in)
			got := ""
			if ok {
				got = r.Name
			}
			if got != tc.want {
				t.Errorf("matched %q, want %q", got, tc.want)
			}
		})
	}
	if _, ok := f.MatchRoute("nobody", http("GET", "/", nil)); ok {
		t.Error("a route matched for an unknown service")
	}
}

func TestHedgeAllowed(t *testing.T) {
	mustParse(t, `
version: 1
services:
  orders:
    routes:
      - name: reads
        match: { methods: [GET, PUT] }
        policy: { hedge: { delay: 10ms } }
      - name: marked
        match: { methods: [POST] }
        policy: { idempotent: true, hedge: { percentile: 99 } }
`)
}

func mustParse(t *testing.T, src string) *File {
	t.Helper()
	f, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	for _, s := range storedSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStored(t, data)
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		js, err := file.JSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse("canonical.json", js)
		if err != nil {
			t.Fatalf("canonical JSON does not parse: %v\n%s", err, js)
		}
		if d := Diff(file, again); len(d) > 0 {
			t.Fatalf("canonical JSON changes the file: %v", d)
		}
		if fast := decodeCanonical(js); fast == nil {
			t.Fatalf("canonical JSON misses ParseStored's fast path:\n%s", js)
		} else if !reflect.DeepEqual(fast, again) {
			t.Fatalf("ParseStored's fast path decodes canonical JSON differently:\n%s", js)
		}
	})
}
