package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// storedSeeds returns the canonical JSON of every good test file, and
// variants of it that encoding/json reads but Parse does not (or reads
// differently), each of which ParseStored must send down Parse's path.
func storedSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob("testdata/*/*.yaml")
	files = append(files, "../examples/shop/mesh.yaml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, data)
		f, err := Parse(p, data)
		if err != nil {
			continue
		}
		js, err := f.JSON()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, js,
			bytes.Replace(js, []byte(`"version"`), []byte(`"Version"`), 1),                              // case
			bytes.Replace(js, []byte(`"version": 1`), []byte(`"version": 2, "version": 1`), 1),          // duplicate
			bytes.Replace(js, []byte(`"version": 1`), []byte(`"version": 1, "extra": 1`), 1),            // unknown field
			bytes.Replace(js, []byte(`"attempts": `), []byte(`"attempts": -`), 1),                       // negative
			bytes.Replace(js, []byte(`"timeout": "`), []byte(`"timeout": "-`), 1),                       // negative duration
			bytes.ReplaceAll(js, []byte("\n  "), []byte("\n\t")),                                        // other whitespace
			bytes.Replace(js, []byte(`"max_concurrent": `), []byte(`"max_concurrent": -`), 1),           // negative int
			bytes.Replace(js, []byte(`"per_caller": `), []byte(`"per_caller": -`), 1),                   // negative int
			bytes.Replace(js, []byte(`"max_concurrent": `), []byte(`"max_concurrent": 99999999999`), 1), // over MaxInt32
		)
	}
	// Weights that sum to 100, each at most 100, one negative.
	f, err := Parse("split.yaml", []byte("version: 1\nservices:\n  a:\n    subsets: [v1, v2, v3]\n"+
		"    policy: {split: {v1: 40, v2: 30, v3: 30}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	js = bytes.Replace(js, []byte(`"v1": 40`), []byte(`"v1": 100`), 1)
	return append(seeds, bytes.Replace(js, []byte(`"v3": 30`), []byte(`"v3": -30`), 1))
}

// checkStored fails unless ParseStored and Parse agree on data: both
// refuse it, or both return equal files.
func checkStored(t *testing.T, data []byte) {
	t.Helper()
	want, werr := Parse("x.json", data)
	got, gerr := ParseStored("x.json", data)
	switch {
	case (werr == nil) != (gerr == nil):
		t.Fatalf("Parse: %v, ParseStored: %v\n%s", werr, gerr, data)
	case werr != nil:
		if werr.Error() != gerr.Error() {
			t.Fatalf("Parse: %v, ParseStored: %v", werr, gerr)
		}
	case !reflect.DeepEqual(got, want):
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("ParseStored gives\n%s\nParse gives\n%s", g, w)
	}
}

func TestParseStored(t *testing.T) {
	fast := 0
	for _, data := range storedSeeds(t) {
		checkStored(t, data)
		if decodeCanonical(data) != nil {
			fast++
			if !bytes.HasPrefix(data, []byte("{")) || strings.Contains(string(data), `"Version"`) {
				t.Errorf("fast path taken for a non-canonical rendering:\n%s", data)
			}
		}
	}
	if fast == 0 {
		t.Fatal("no seed took the fast path")
	}
	// A stored file is what the JSON rendering of every good file is.
	for _, p := range []string{"../examples/shop/mesh.yaml", "testdata/good/schema.yaml", "testdata/good/egress.yaml"} {
		f, err := ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := f.JSON()
		if decodeCanonical(js) == nil {
			t.Errorf("%s: its canonical JSON does not take the fast path", p)
		}
	}
	if _, err := ParseStored("x", []byte("{")); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseStored of bad JSON: %v, want ErrInvalid", err)
	}
}

func TestSameTokens(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{`{ "a": 1 }`, `{"a":1}`, true},
		{"{\n  \"a b\": \"x y\"\n}", `{"a b":"x y"}`, true},
		{`{"a": "x y"}`, `{"a":"xy"}`, false},
		{`{"a": "\" x"}`, `{"a":"\"x"}`, false},
		{`{"a": "\\" , "b":1}`, `{"a":"\\","b":1}`, true},
		{`{"a":1}`, `{"a":1}x`, false},
		{`{"a":1}x`, `{"a":1}`, false},
	} {
		if got := sameTokens([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("sameTokens(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func FuzzParseStored(f *testing.F) {
	for _, s := range storedSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkStored(t, data) })
}

// BenchmarkParseStored compares the two ways a watcher can decode a stored
// version of the demo's mesh file: Parse's YAML path, and ParseStored.
func BenchmarkParseStored(b *testing.B) {
	f, err := ParseFile("../examples/shop/mesh.yaml")
	if err != nil {
		b.Fatal(err)
	}
	js, err := f.JSON()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		parse func(string, []byte) (*File, error)
	}{{"Parse", Parse}, {"ParseStored", ParseStored}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.parse("mesh.json", js); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
