package resilience_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/resilience"
	"github.com/natsmesh/natsmesh/wire"
)

// TestBreakersListed: the breakers in use are listed without a mesh file
// (the built-in policy's), for a service the file does not name, and for
// a route whose own policy configures its breaker.
func TestBreakersListed(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
services:
  orders:
    routes:
      - name: reads
        match: {methods: [GET]}
        policy:
          circuit_breaker: {min_requests: 7}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		src   *live.Source
		route string
		want  string
	}{
		{"no mesh file", nil, "", "orders=closed payments=closed"},
		{"a route's breaker; a service not in the file", live.Static(f), "reads", "orders=closed payments=closed"},
	} {
		obs := &observer{}
		s := resilience.New(resilience.Config{Policies: tc.src, Observer: obs})(&recorder{answers: []func() (*pipeline.Reply, error){replyStatus("200")}})
		ctx := context.Background()
		if tc.route != "" {
			ctx = pipeline.WithRoute(ctx, tc.route)
		}
		for _, svc := range []string{"orders", "payments"} {
			if _, err := s.Send(ctx, &pipeline.Call{Service: svc, Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodGet, Path: "/x"}); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if got := obs.breakers(); got != tc.want {
			t.Errorf("%s: breakers %q, want %q", tc.name, got, tc.want)
		}
	}
}
