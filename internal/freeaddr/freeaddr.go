package freeaddr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// slices is how many slices of the range below the ephemeral one the
// processes take their ports from first.
const slices = 16

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Loopback returns a loopback address ("127.0.0.1:PORT") whose port is
// free now and was not returned before in this process (see the package
// doc).
func Loopback() (string, error) {
	if low := ephemeralLow(); low > 11000 {
		span := low - 10000
		slice := span / slices
		base := 10000 + (os.Getpid()%slices)*slice
		for i := range 200 {
			port := base + rand.IntN(slice)
			if i >= 100 { // this slice is crowded: anywhere below
				port = 10000 + rand.IntN(span)
			}
			if addr, ok := try(port); ok {
				return addr, nil
			}
		}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if claim(port) {
			return "127.0.0.1:" + strconv.Itoa(port), nil
		}
	}
	return "", errors.New("freeaddr: no free loopback port not handed out before")
}

// try claims port and returns its address if it is free now.
func try(port int) (string, bool) {
	if !claim(port) {
		return "", false
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return "", false
	}
	addr := l.Addr().String()
	l.Close()
	return addr, true
}

// claim reports whether port was not handed out before, and marks it.
func claim(port int) bool {
	mu.Lock()
	defer mu.Unlock()
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
