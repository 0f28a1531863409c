package resilience_test

import (
	"testing"

	"github.com/natsmesh/natsmesh/resilience"
)

// TestNames: how a destination and a breaker's state are named in errors
// and metrics.
func TestNames(t *testing.T) {
	for _, tc := range []struct {
		got  interface{ String() string }
		want string
	}{
		{resilience.Destination{Service: "orders"}, "orders"},
		{resilience.Destination{Service: "orders", Subset: "v2"}, "orders@v2"},
		{resilience.Destination{Subject: "legacy.orders"}, "legacy.orders"},
		{resilience.BreakerClosed, "closed"},
		{resilience.BreakerHalfOpen, "half-open"},
		{resilience.BreakerOpen, "open"},
		{resilience.BreakerState(7), "BreakerState(7)"},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.got, s, tc.want)
		}
	}
}
