package policies_test

import (
	"fmt"
	"net/http"

	"github.com/natsmesh/natsmesh/policies"
)

func Example() {
	f, err := policies.Parse("mesh.yaml", []byte(`
version: 1
defaults:
  retries: { attempts: 2 }
services:
  orders:
    subsets: [v1, v2]
    policy: { timeout: 5s }
    routes:
      - name: beta
        match: { path_prefix: /api, headers: { x-beta: "1" } }
        split: { v2: 100 }
        policy: { timeout: 2s }
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, ok := f.MatchRoute("orders", policies.MatchInput{
		Proto: policies.ProtoHTTP, Method: "GET", Path: "/api/items",
		Header: http.Header{"X-Beta": {"1"}},
	})
	fmt.Println(r.Name, ok)
	p := f.Policy("orders", r.Name)
	fmt.Println(p.Timeout, *p.Retries.Attempts, p.Split)
	// Output:
	// beta true
	// 2s 2 map[v2:100]
}

func ExampleParse_error() {
	_, err := policies.Parse("mesh.yaml", []byte(`
version: 1
services:
  orders:
    policy:
      retries: { budget: 200% }
`))
	fmt.Println(err)
	// Output:
	// policies: mesh.yaml:6: services.orders.policy.retries.budget: "200%" is not a percentage in 0-100%
}
