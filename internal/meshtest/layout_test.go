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

// TestTestHelpersStayInTests walks the module's Go files: only _test.go
// files, and the test helpers themselves, import a test helper, so none of
// them (nor the testing package they bring) reaches a binary.
func TestTestHelpersStayInTests(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	helpers := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
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
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
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
