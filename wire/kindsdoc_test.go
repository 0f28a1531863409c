package wire_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/wire"
)

// TestMeshErrorsDoc: docs/wire.md's table of mesh errors lists every Kind
// that errors.go declares exactly once, with the HTTP status and gRPC code
// the Kind maps to (issue 19: upstream-refused and broker-unavailable were
// listed twice, in different words).
func TestMeshErrorsDoc(t *testing.T) {
	// The kinds, from the source: a new Kind without a row fails too.
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []wire.Kind
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); ok && id.Name == "Kind" && len(v.Values) == 1 {
				lit, _ := strconv.Unquote(v.Values[0].(*ast.BasicLit).Value)
				kinds = append(kinds, wire.Kind(lit))
			}
		}
	}
	if len(kinds) < 10 {
		t.Fatalf("found %d kinds in errors.go: %v", len(kinds), kinds)
	}
	doc, err := os.ReadFile("../docs/wire.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "\n## Mesh errors\n")
	if !ok {
		t.Fatal("docs/wire.md has no Mesh errors section")
	}
	rows := map[wire.Kind][][]string{}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (\\d+)[^|]* \\| ([A-Z_]+) \\|")
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		rows[wire.Kind(m[1])] = append(rows[wire.Kind(m[1])], m[2:])
	}
	for _, k := range kinds {
		e := &wire.Error{Kind: k}
		switch got := rows[k]; {
		case len(got) != 1:
			t.Errorf("%s: %d rows, want 1", k, len(got))
		case got[0][0] != strconv.Itoa(e.HTTPStatus()):
			t.Errorf("%s: HTTP %s in the doc, %d in the code", k, got[0][0], e.HTTPStatus())
		case got[0][1] != upperSnake(e.GRPCCode().String()):
			t.Errorf("%s: gRPC %s in the doc, %s in the code", k, got[0][1], upperSnake(e.GRPCCode().String()))
		}
		delete(rows, k)
	}
	for k := range rows {
		t.Errorf("the doc lists %s, which is no Kind", k)
	}
}

// upperSnake is a gRPC code's name as the protocol spells it:
// DeadlineExceeded -> DEADLINE_EXCEEDED.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
