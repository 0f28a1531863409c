package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestAgentNamesAndBasePath runs two instances of orders (any, and subset
// v2 whose upstream has the base path /api) and a caller's sidecar with
// --domain svc.cluster.local, and calls them by every name a caller may
// use: Kubernetes-style names and .mesh (issue 9, item 4), SUBSET.SERVICE
// through the proxy, the Host header and --bind (item 3), and a base path
// on --upstream that prefixes the call's path (item 6).
func TestAgentNamesAndBasePath(t *testing.T) {
	b := meshtest.Broker(t)
	upstream := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	for _, inst := range []struct{ subset, upstream string }{
		{"", upstream("v1")},
		{"v2", upstream("v2") + "/api"},
	} {
		admin := freeAddr(t)
		p := startProc(t, "agent", "--service", "orders", "--subset", inst.subset, "--upstream", inst.upstream,
			"--nats", b.ClientURL(), "--proxy", "off", "--grpc-proxy", "off", "--admin", admin, "--health-interval", "50ms")
		waitHTTP(t, p, "http://"+admin+"/readyz")
	}
	proxy, bind, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	// SUBSET.SERVICE names a subset of a service the mesh file declares;
	// only 127.0.0.1 may be called outside the mesh (issue 19).
	outside := upstream("outside")
	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(mesh, []byte("version: 1\nservices:\n  web: {}\n  orders: { subsets: [v2] }\n"+
		"egress:\n  mode: registry_only\n  hosts: { 127.0.0.1: {} }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	web := startProc(t, "agent", "--service", "web", "--nats", b.ClientURL(), "--proxy", proxy, "--grpc-proxy", "off",
		"--admin", admin, "--domain", "svc.cluster.local", "--bind", "v2.orders="+bind, "--policy", mesh)
	waitHTTP(t, web, "http://"+admin+"/readyz")

	proxyURL, _ := url.Parse("http://" + proxy)
	viaProxy := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	get := func(c *http.Client, rawURL, host string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", rawURL, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", rawURL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name, url, host string
		want            string // a prefix: "v" matches either instance
	}{
		{"kubernetes name", "http://orders.svc.cluster.local/x?q=1", "", "v"},
		{"kubernetes name, upper case", "http://ORDERS.svc.cluster.local/x", "", "v"},
		{".mesh", "http://orders.mesh/x", "", "v"},
		{"subset through the proxy", "http://v2.orders/x?q=1", "", "v2 /api/x?q=1"},
		{"subset and domain", "http://v2.orders.svc.cluster.local/x", "", "v2 /api/x"},
		{"subset and .mesh", "http://v2.orders.mesh/", "", "v2 /api/"},
		{"subset in Host", "http://" + proxy + "/x", "v2.orders", "v2 /api/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := viaProxy
			if tc.host != "" {
				c = http.DefaultClient
			}
			code, body := get(c, tc.url, tc.host)
			if code != 200 || !strings.HasPrefix(body, tc.want) {
				t.Fatalf("%d %q, want 200 %q...", code, body, tc.want)
			}
		})
	}
	t.Run("subset through --bind", func(t *testing.T) {
		if code, body := get(http.DefaultClient, "http://"+bind+"/x", ""); code != 200 || body != "v2 /api/x" {
			t.Fatalf("%d %q, want 200 \"v2 /api/x\"", code, body)
		}
	})
	t.Run("missing subset is named", func(t *testing.T) {
		code, body := get(viaProxy, "http://v3.orders/", "")
		if code != 503 || !strings.Contains(body, "orders@v3") {
			t.Fatalf("%d %q, want 503 naming orders@v3", code, body)
		}
	})
	t.Run("outside the mesh, not allowed", func(t *testing.T) {
		code, body := get(viaProxy, "http://orders.example.com/", "")
		if code != 403 || !strings.Contains(body, `"orders.example.com" is outside the mesh`) || !strings.Contains(body, "egress.hosts") {
			t.Fatalf("%d %q, want 403 egress-denied naming the host and egress.hosts", code, body)
		}
	})
	t.Run("outside the mesh, allowed", func(t *testing.T) {
		if code, body := get(viaProxy, outside+"/x?q=1", ""); code != 200 || body != "outside /x?q=1" {
			t.Fatalf("%d %q, want 200 from the host outside the mesh", code, body)
		}
	})
}
