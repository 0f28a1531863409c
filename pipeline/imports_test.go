package pipeline_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyTheWireFormat: issue 17. The seam knows no protocol: the
// package imports no HTTP (net/http is meshhttp's), and of the mesh's own
// packages only the wire format and its NATS plumbing (the reply mux, what
// the sender's calls share of the connection).
func TestImportsOnlyTheWireFormat(t *testing.T) {
	const module = "github.com/natsmesh/natsmesh/"
	allowed := map[string]bool{
		module + "wire":                   true,
		module + "wire/grpcwire":          true, // the gRPC status of a reply, a raw client's grpc-timeout
		module + "internal/replymux":      true, // the sender's reply subscriptions
		module + "internal/meshstream":    true, // the stream protocol
		module + "internal/outconn":       true, // what the sender's calls share of the connection
		module + "internal/admission":     true, // what the dispatch admits a call by
		module + "internal/adaptivelimit": true, // the dispatch's default concurrency limit
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == "net/http" || strings.HasPrefix(path, "net/http/"):
				t.Errorf("%s imports %s: HTTP is package meshhttp's", name, path)
			case strings.HasPrefix(path, module) && !allowed[path]:
				t.Errorf("%s imports %s: the seam imports only the wire format", name, path)
			}
		}
	}
}
