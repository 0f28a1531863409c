package meshtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr returns a loopback address free now, for a process a test
// starts to listen on. Its port is below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), from which every outgoing connection
// and every ":0" listener of the tests running beside it takes its port:
// a port from that range, free when chosen, can be taken by one of them
// before the process binds it ("address already in use", seen in CI).
// Below it, only another FreeAddr can take it, one port in thousands.
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	if low > 11000 {
		for range 100 {
			port := 10000 + rand.IntN(low-10000)
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				continue
			}
			addr := l.Addr().String()
			l.Close()
			return addr
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow is the low end of the kernel's ephemeral port range, or 0
// where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var low, high int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &low, &high); err != nil {
		return 0
	}
	return low
}
