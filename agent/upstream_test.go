package agent

import (
	"net/http"
	"testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestUpstreamBasePath: issue 9 item 6. An upstream URL with a path
// (http://127.0.0.1:8080/api) puts that path in front of every call's.
func TestUpstreamBasePath(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "one")
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL + "/api/"})
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport()}
	for path, want := range map[string]string{"/v1/items?x=1": "/api/v1/items?x=1", "/": "/api/", "/a%2Fb": "/api/a%2Fb"} {
		resp, err := c.Get("http://orders" + path)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeEcho(t, resp).URI; got != want {
			t.Errorf("%s reached the service as %s, want %s", path, got, want)
		}
	}
}
