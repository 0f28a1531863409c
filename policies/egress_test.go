package policies

import (
	"testing"
	"time"
)

// TestEgressEntry: a listed host is its own entry, a name under a
// wildcard the longest wildcard's, anything else EgressOther, allowed
// only in allow_any mode; a listed host's policy merges over the
// defaults, without hedge or fault.
func TestEgressEntry(t *testing.T) {
	f, err := Parse("mesh.yaml", []byte(`version: 1
defaults: { retries: { attempts: 4 }, hedge: { delay: 5ms }, fault: { delay: { percent: 1, duration: 1ms } } }
egress:
  mode: registry_only
  hosts:
    api.stripe.com: { policy: { timeout: 5s } }
    "*.example.com": {}
    "*.eu.example.com": {}
    127.0.0.1: {}
    "::1": {}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host, entry string
		allowed     bool
	}{
		{"api.stripe.com", "api.stripe.com", true},
		{"stripe.com", EgressOther, false},
		{"a.example.com", "*.example.com", true},
		{"a.eu.example.com", "*.eu.example.com", true},
		{"example.com", EgressOther, false},
		{"badexample.com", EgressOther, false},
		{"127.0.0.1", "127.0.0.1", true},
		{"::1", "::1", true},
		{"127.0.0.2", EgressOther, false},
	} {
		if entry, allowed := f.EgressEntry(tt.host); entry != tt.entry || allowed != tt.allowed {
			t.Errorf("EgressEntry(%q) = %q, %v; want %q, %v", tt.host, entry, allowed, tt.entry, tt.allowed)
		}
	}
	p := f.EgressPolicy("api.stripe.com")
	if p.Timeout.D() != 5*time.Second || *p.Retries.Attempts != 4 || p.Hedge != nil || p.Fault != nil {
		t.Errorf("EgressPolicy = timeout %v, attempts %d, hedge %v, fault %v; want 5s, 4 (the defaults'), none, none", p.Timeout, *p.Retries.Attempts, p.Hedge, p.Fault)
	}
	var none *File
	if entry, allowed := none.EgressEntry("example.com"); entry != EgressOther || !allowed {
		t.Errorf("no mesh file: EgressEntry = %q, %v; want %q, allowed (allow_any)", entry, allowed, EgressOther)
	}
	open, _ := Parse("mesh.yaml", []byte("version: 1\negress: { hosts: { a.com: {} } }\n"))
	if open.Egress.Mode != EgressAllowAny {
		t.Errorf("mode filled in as %q, want %q", open.Egress.Mode, EgressAllowAny)
	}
	if _, allowed := open.EgressEntry("b.com"); !allowed {
		t.Error("allow_any refuses an unlisted host")
	}
}
