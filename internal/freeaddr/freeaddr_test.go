package freeaddr

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoopbackOnce: 2,000 addresses, none twice, each free to listen on,
// and below the ephemeral range where it can be read.
func TestLoopbackOnce(t *testing.T) {
	low := ephemeralLow()
	seen := map[string]bool{}
	for range 2000 {
		a, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("Loopback returned %s twice", a)
		}
		seen[a] = true
		port, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
		if low > 11000 && port >= low {
			t.Fatalf("port %d is in the ephemeral range (from %d)", port, low)
		}
	}
	a, _ := Loopback()
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("listen on %s: %v", a, err)
	}
	l.Close()
}
