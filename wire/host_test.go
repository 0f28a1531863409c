package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	domains := []string{"svc.cluster.local", "default.svc.cluster.local"}
	tests := []struct {
		host, service, subset string
	}{
		{"orders", "orders", ""},
		{"ORDERS.", "orders", ""},
		{"orders:8080", "orders", ""},
		{"v2.orders", "orders", "v2"},
		{"v2.orders:80", "orders", "v2"},
		{"orders.mesh", "orders", ""},
		{"v2.orders.mesh", "orders", "v2"},
		{"orders.svc.cluster.local", "orders", ""},
		{"v2.orders.svc.cluster.local.", "orders", "v2"},
		// The longest matching domain wins: a namespace is not a subset.
		{"orders.default.svc.cluster.local", "orders", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			service, subset, err := ParseHost(tt.host, domains)
			if err != nil || service != tt.service || subset != tt.subset {
				t.Fatalf("ParseHost(%q) = %q, %q, %v; want %q, %q", tt.host, service, subset, err, tt.service, tt.subset)
			}
		})
	}
	for _, bad := range []string{"", "a.b.c", "orders@v2", "*", "orders.>", "x_y", ".orders", "[::1]:80", "v2..orders", "Orders Inc"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if s, ss, err := ParseHost(bad, domains); !errors.Is(err, ErrNoRoute) {
				t.Fatalf("ParseHost(%q) = %q, %q, %v; want no-route", bad, s, ss, err)
			}
		})
	}
}

// FuzzParseHost checks the mapping from a request's Host (outside input) to
// a destination subject: it never panics, and whatever it accepts is a
// valid service (and subset) that yields a six-token subject.
func FuzzParseHost(f *testing.F) {
	for _, seed := range []string{"orders", "orders:8080", "ORDERS.", "a.b", "*", ">", "orders.>", "$SYS", "", ":80",
		"[::1]:80", "orders\x00", "ördérs", "-x", "x-", strings.Repeat("a", 64), "v2.orders.mesh", "a.b.svc.cluster.local"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		service, subset, err := ParseHost(host, []string{"svc.cluster.local"})
		if err != nil {
			if !errors.Is(err, ErrNoRoute) {
				t.Fatalf("ParseHost(%q) error %v is not a no-route mesh error", host, err)
			}
			return
		}
		s := Subject{Service: service, Subset: subset, Caller: "web", Proto: ProtoHTTP, Op: "GET"}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseHost(%q) = %q, %q: %v", host, service, subset, err)
		}
		if n := strings.Count(s.String(), ".") + 1; n != 6 {
			t.Fatalf("subject %q for host %q has %d tokens", s, host, n)
		}
	})
}
