package egress_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
)

// BenchmarkEgressHTTP is one plain-HTTP call out of the mesh through the
// agent's proxy (direct: the same call without the agent), to a host the
// mesh file lists (its policy applies) and to one it does not.
func BenchmarkEgressHTTP(b *testing.B) {
	srv := external(b, nil)
	m := agenttest.NewMesh(b, allowAny+"egress: { hosts: { listed.test: {} } }\n")
	web := m.Agent("web", "", nil, func(c *agent.Config) {
		c.EgressDial = hosts{"listed.test:80": srv.Listener.Addr().String(), "unlisted.test:80": srv.Listener.Addr().String()}.dial
	})
	client, _ := proxyClient(b, web, nil)
	run := func(b *testing.B, c *http.Client, url string) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, srv.Client(), srv.URL+"/x") })
	b.Run("listed", func(b *testing.B) { run(b, client, "http://listed.test/x") })
	b.Run("unlisted", func(b *testing.B) { run(b, client, "http://unlisted.test/x") })
}
