package accounts

import (
	"os"
	"strings"
	"testing"
)

// TestConfigListsOnlyWhatIsThere: an account's exports and imports are
// written only for an account that has some: the system account has
// neither, and its block lists none (not an empty list).
func TestConfigListsOnlyWhatIsThere(t *testing.T) {
	conf, err := os.ReadFile(ConfigFile(generated(t, testSpec())))
	if err != nil {
		t.Fatal(err)
	}
	_, sys, ok := strings.Cut(string(conf), "\n  SYS {\n")
	if !ok {
		t.Fatalf("no SYS account in:\n%s", conf)
	}
	if strings.Contains(sys, "exports") || strings.Contains(sys, "imports") {
		t.Errorf("the system account lists exports or imports:\n%s", sys)
	}
	if n := strings.Count(string(conf), "exports: ["); n != 4 {
		t.Errorf("%d accounts list exports, want 4 (mesh, billing, other, STORE)", n)
	}
}
