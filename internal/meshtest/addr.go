package meshtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address free now, for a process a test
// starts to listen on. Its port is below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), from which every outgoing connection
// and every ":0" listener of the tests running beside it takes its port:
// a port from that range, free when chosen, can be taken by one of them
// before the process binds it ("address already in use", seen in CI).
// Below it, only another FreeAddr can take it: never one of this test
// process's (a port is handed out once: a test that picks its processes'
// ports one after another, before any binds, got the same one twice,
// seen in CI), and another test process's rarely, each taking its ports
// from its own slice of the range first (by its process ID).
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	if low > 11000 {
		span := low - 10000
		slice := span / portSlices
		base := 10000 + (os.Getpid()%portSlices)*slice
		for i := range 200 {
			port := base + rand.IntN(slice)
			if i >= 100 { // this slice is crowded: anywhere below
				port = 10000 + rand.IntN(span)
			}
			if !claim(port) {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				continue
			}
			addr := l.Addr().String()
			l.Close()
			return addr
		}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().(*net.TCPAddr)
		l.Close()
		if claim(addr.Port) {
			return addr.String()
		}
	}
	t.Fatal("no free loopback port not handed out before")
	return ""
}

// portSlices is how many slices of the range below the ephemeral one the
// test processes take their ports from.
const portSlices = 16

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// claim reports whether port was not handed out before, and marks it.
func claim(port int) bool {
	handedMu.Lock()
	defer handedMu.Unlock()
	if handed[port] {
		return false
	}
	handed[port] = true
	return true
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
