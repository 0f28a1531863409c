package agent

import (
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/bridge"
)

// FuzzServiceFromHost checks the mapping from a request's Host (outside
// input) to a destination subject: it never panics, and whatever it accepts
// is a valid service name that yields a six-token subject.
func FuzzServiceFromHost(f *testing.F) {
	for _, seed := range []string{"orders", "orders:8080", "ORDERS.", "a.b", "*", ">", "orders.>", "$SYS", "", ":80",
		"[::1]:80", "orders\x00", "ördérs", "-x", "x-", strings.Repeat("a", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		service, err := serviceFromHost(host)
		if err != nil {
			if !strings.Contains(err.Error(), "no-route") {
				t.Fatalf("serviceFromHost(%q) error %v is not a no-route mesh error", host, err)
			}
			return
		}
		if err := bridge.ValidateName("service", service); err != nil {
			t.Fatalf("serviceFromHost(%q) = %q, not a valid name: %v", host, service, err)
		}
		subject := bridge.Subject{Service: service, Caller: "web", Proto: bridge.ProtoHTTP, Op: "GET"}.String()
		if n := strings.Count(subject, ".") + 1; n != 6 {
			t.Fatalf("subject %q for host %q has %d tokens", subject, host, n)
		}
	})
}
