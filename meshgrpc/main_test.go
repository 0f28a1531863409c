package meshgrpc

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine (a proxy's half-close
// wait, a server's handler) outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
