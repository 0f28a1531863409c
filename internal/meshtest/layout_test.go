package meshtest

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/natsmesh/natsmesh/"

// testHelper reports whether the import path is one of the module's test
// helper packages: under internal/, named *test (meshtest, agenttest,
// statstest, browsertest) or test* (testcert).
func testHelper(importPath string) bool {
	rel, ok := strings.CutPrefix(importPath, module+"internal/")
	if !ok || strings.Contains(rel, "/") {
		return false
	}
	return strings.HasSuffix(rel, "test") || strings.HasPrefix(rel, "test")
}

// walkFiles calls f with the path of each file below root, passing over
// hidden directories and testdata.
func walkFiles(root string, f func(p string) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		return f(p)
	})
}

// TestTestHelpersStayInTests walks the module's Go files: only _test.go
// files, and the test helpers themselves, import a test helper, so none of
// them (nor the testing package they bring) reaches a binary.
func TestTestHelpersStayInTests(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	helpers := 0
	err := walkFiles(root, func(p string) error {
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		pkg := module + path.Dir(filepath.ToSlash(rel))
		if testHelper(pkg) {
			helpers++
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, im := range f.Imports {
			if ip, _ := strconv.Unquote(im.Path.Value); testHelper(ip) {
				t.Errorf("%s imports the test helper %s; only tests may", rel, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if helpers == 0 {
		t.Fatal("found no test helper package: is the walk rooted at the module?")
	}
}

// TestEveryPackageChecksLeaks walks the module's packages: each one with
// tests verifies in its TestMain that no test leaves a goroutine behind
// (goleak.VerifyTestMain, or goleak.Find where TestMain has more to do).
func TestEveryPackageChecksLeaks(t *testing.T) {
	root := filepath.Join("..", "..")
	tests := map[string]bool{} // directory: some test file uses goleak
	err := walkFiles(root, func(p string) error {
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dir := filepath.Dir(p)
		tests[dir] = tests[dir] || bytes.Contains(src, []byte("goleak.VerifyTestMain(")) || bytes.Contains(src, []byte("goleak.Find("))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) == 0 {
		t.Fatal("found no tests: is the walk rooted at the module?")
	}
	for dir, ok := range tests {
		if !ok {
			rel, _ := filepath.Rel(root, dir)
			t.Errorf("%s has tests but no goleak in its TestMain", rel)
		}
	}
}

// TestReadmeLayoutListsEveryPackage checks the README's "## Layout"
// section against the tree: every package (a directory with Go files) and
// every page under docs/ has its line there, and every path listed there
// exists.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	if i := strings.Index(layout, "\n## "); i >= 0 {
		layout = layout[:i]
	}
	listed := map[string]bool{} // "agent/", "docs/wire.md": the first path of each list line
	for line := range strings.Lines(layout) {
		rest, ok := strings.CutPrefix(line, "- ")
		if !ok {
			continue
		}
		var p string
		switch {
		case strings.HasPrefix(rest, "`"):
			p, _, _ = strings.Cut(rest[1:], "`")
		case strings.HasPrefix(rest, "["):
			p, _, _ = strings.Cut(rest[1:], "]")
		}
		if p == "" {
			t.Errorf("README layout line names no path: %q", strings.TrimSpace(line))
			continue
		}
		listed[p] = true
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err != nil {
			t.Errorf("README layout lists %s, which does not exist", p)
		}
	}
	want := map[string]bool{}
	err = walkFiles(root, func(p string) error {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasSuffix(rel, ".go") && path.Dir(rel) != ".":
			want[path.Dir(rel)+"/"] = true
		case path.Dir(rel) == "docs" && strings.HasSuffix(rel, ".md"):
			want[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if !listed[p] {
			t.Errorf("README's Layout has no line for %s", p)
		}
	}
}
