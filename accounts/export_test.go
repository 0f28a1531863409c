package accounts

import "testing"

// ParseMeshFile reads a mesh file into a Spec (policies.ParseFile and
// File.AccountsSpec). Package policies imports this package, so only an
// external test package may import it: meshfile_test.go (package
// accounts_test) sets this before the tests run.
var ParseMeshFile func(path string) (Spec, error)

func parseMeshFile(t *testing.T, path string) Spec {
	t.Helper()
	if ParseMeshFile == nil {
		t.Fatal("ParseMeshFile is not set (meshfile_test.go)")
	}
	spec, err := ParseMeshFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
