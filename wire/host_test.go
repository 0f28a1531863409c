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

// TestReadHost is the rule of which hosts a client addresses through the
// agent's proxy are mesh services (docs/mesh-file.md): "example.com" is
// never the subset "example" of a service "com" (issue 19), nor is a
// typo of a mesh file's service a service.
func TestReadHost(t *testing.T) {
	domains := []string{"svc.cluster.local"}
	declared := serviceSet{"orders": true, "web": true}
	mesh := func(service, subset string) Dest { return Dest{Service: service, Subset: subset} }
	ext := func(host string) Dest { return Dest{External: host} }
	tests := []struct {
		host     string
		noFile   Dest // without a mesh file (declared nil)
		withFile Dest // with a mesh file declaring orders and web
		complete Dest // with that mesh file, complete (the broker's permissions come from it)
	}{
		{"orders", mesh("orders", ""), mesh("orders", ""), mesh("orders", "")},
		{"ORDERS.:8080", mesh("orders", ""), mesh("orders", ""), mesh("orders", "")},
		{"ordrs", mesh("ordrs", ""), mesh("ordrs", ""), ext("ordrs")},
		{"v2.orders", ext("v2.orders"), mesh("orders", "v2"), mesh("orders", "v2")},
		{"v2.orders:80", ext("v2.orders"), mesh("orders", "v2"), mesh("orders", "v2")},
		{"orders.mesh", mesh("orders", ""), mesh("orders", ""), mesh("orders", "")},
		{"v2.orders.mesh", mesh("orders", "v2"), mesh("orders", "v2"), mesh("orders", "v2")},
		{"v2.ordrs.mesh", mesh("ordrs", "v2"), mesh("ordrs", "v2"), mesh("ordrs", "v2")},
		{"orders.svc.cluster.local", mesh("orders", ""), mesh("orders", ""), mesh("orders", "")},
		{"example.com", ext("example.com"), ext("example.com"), ext("example.com")},
		{"Example.COM.:443", ext("example.com"), ext("example.com"), ext("example.com")},
		{"api.stripe.com", ext("api.stripe.com"), ext("api.stripe.com"), ext("api.stripe.com")},
		{"localhost", ext("localhost"), ext("localhost"), ext("localhost")},
		{"localhost:8080", ext("localhost"), ext("localhost"), ext("localhost")},
		{"app.localhost", ext("app.localhost"), ext("app.localhost"), ext("app.localhost")},
		{"127.0.0.1:8080", ext("127.0.0.1"), ext("127.0.0.1"), ext("127.0.0.1")},
		{"10.0.0.1", ext("10.0.0.1"), ext("10.0.0.1"), ext("10.0.0.1")},
		{"[::1]:443", ext("::1"), ext("::1"), ext("::1")},
		{"[::1]", ext("::1"), ext("::1"), ext("::1")},
		{"my_host.example", ext("my_host.example"), ext("my_host.example"), ext("my_host.example")},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if d, err := ReadHost(tt.host, domains, nil, false); err != nil || d != tt.noFile {
				t.Errorf("without a mesh file: ReadHost(%q) = %+v, %v; want %+v", tt.host, d, err, tt.noFile)
			}
			if d, err := ReadHost(tt.host, domains, declared, false); err != nil || d != tt.withFile {
				t.Errorf("with a mesh file: ReadHost(%q) = %+v, %v; want %+v", tt.host, d, err, tt.withFile)
			}
			if d, err := ReadHost(tt.host, domains, declared, true); err != nil || d != tt.complete {
				t.Errorf("with a complete mesh file: ReadHost(%q) = %+v, %v; want %+v", tt.host, d, err, tt.complete)
			}
		})
	}
	for _, bad := range []string{"", "*", "orders.>", "a b", "x..y", ".orders", "a.b.c.mesh", "x_y.mesh", "[::1", "orders@v2", strings.Repeat("a", 300)} {
		t.Run("bad "+bad, func(t *testing.T) {
			if d, err := ReadHost(bad, domains, declared, true); !errors.Is(err, ErrNoRoute) {
				t.Fatalf("ReadHost(%q) = %+v, %v; want no-route", bad, d, err)
			}
		})
	}
}

// FuzzReadHost: whatever ReadHost reads as a mesh service yields a valid
// subject, and what it reads as external is a host name without a port.
func FuzzReadHost(f *testing.F) {
	for _, seed := range []string{"orders", "v2.orders", "example.com", "localhost:80", "[::1]:443", "127.0.0.1", "*", "a.b.mesh", "", "x..y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		d, err := ReadHost(host, nil, serviceSet{"orders": true}, true)
		switch {
		case err != nil:
			if !errors.Is(err, ErrNoRoute) {
				t.Fatalf("ReadHost(%q) error %v is not no-route", host, err)
			}
		case d.External != "":
			if d.Service != "" || !validHostName(d.External) || strings.Contains(strings.Trim(d.External, "0123456789abcdef:."), ":") {
				t.Fatalf("ReadHost(%q) = %+v", host, d)
			}
		default:
			s := Subject{Service: d.Service, Subset: d.Subset, Caller: "web", Proto: ProtoHTTP, Op: "GET"}
			if err := s.Validate(); err != nil {
				t.Fatalf("ReadHost(%q) = %+v: %v", host, d, err)
			}
		}
	})
}

type serviceSet map[string]bool

func (s serviceSet) Declares(service string) bool { return s[service] }

// TestReadHostAllocs: the proxy reads every request's host with
// ReadHost; a host in lower case costs no allocation, a mesh service's or
// an external one's.
func TestReadHostAllocs(t *testing.T) {
	declared := serviceSet{"orders": true}
	for _, host := range []string{"orders", "v2.orders:8080", "v2.orders.mesh", "api.example.com:443", "127.0.0.1:8080"} {
		if n := testing.AllocsPerRun(100, func() { ReadHost(host, []string{"svc.cluster.local"}, declared, true) }); n != 0 {
			t.Errorf("ReadHost(%q): %v allocations, want 0", host, n)
		}
	}
}
