package meshtest

import (
	"testing"

	"github.com/natsmesh/natsmesh/internal/freeaddr"
)

// FreeAddr returns a loopback address free now, for a process a test
// starts to listen on: package freeaddr's, below the kernel's ephemeral
// range and never the same twice in a test process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeaddr.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
