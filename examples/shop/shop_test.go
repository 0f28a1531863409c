package shop

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestShop runs the shop twice: on an open broker, applying mesh.yaml from
// the policies bucket (the agents alone enforce its allow lists), and as
// `natsmesh demo` does, with the accounts generated from mesh.yaml too,
// every part connected over TCP with its own NKey.
func TestShop(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		b := meshtest.Broker(t)
		// The mesh file from the policies bucket, as the demo runs it.
		src, err := Policies(context.Background(), meshtest.Conn(t, b), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		testShop(t, Config{Policies: src, Connect: func(service string) (*nats.Conn, error) {
			return nats.Connect(b.ClientURL(), nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		}}, false)
	})
	t.Run("auth", func(t *testing.T) {
		f, err := MeshFile()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := accounts.Generate(f.AccountsSpec(), dir); err != nil {
			t.Fatal(err)
		}
		b := meshtest.Broker(t, func(c *broker.Config) { c.ConfigFile = accounts.ConfigFile(dir) })
		testShop(t, Config{Policies: live.Static(f), Connect: func(service string) (*nats.Conn, error) {
			nk, err := nats.NkeyOptionFromSeed(accounts.SeedFile(dir, service))
			if err != nil {
				return nil, err
			}
			return nats.Connect(b.ClientURL(), nk, nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		}}, true)

		// Discovery as the admin, as the demo prints it for the nats CLI
		// (--inbox-prefix _INBOX_mesh.admin.SRV: the only inbox services
		// may answer discovery in).
		nk, err := nats.NkeyOptionFromSeed(accounts.SeedFile(dir, accounts.DefaultAdmin))
		if err != nil {
			t.Fatal(err)
		}
		admin := meshtest.Conn(t, b, nk, nats.CustomInboxPrefix(wire.PairInbox(accounts.DefaultAdmin, wire.PeerSRV)))
		m, err := admin.Request("$SRV.PING.clock", nil, 5*time.Second)
		if err != nil || !strings.Contains(string(m.Data), `"name":"clock"`) {
			t.Errorf("admin $SRV.PING.clock: %v %v", m, err)
		}
	})
}

func testShop(t *testing.T, cfg Config, auth bool) {
	cfg.Gateway, cfg.Proxy = "127.0.0.1:0", "127.0.0.1:0"
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	gw := "http://" + m.GatewayAddr
	proxyURL, _ := url.Parse("http://" + m.ProxyAddr)
	viaProxy := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}

	for _, tc := range []struct {
		name, method, url, body string
		client                  *http.Client
		status                  int
		want                    string // in the body
		authStatus              int    // with auth, if it differs
		authWant                string
	}{
		{"stock via gateway", "GET", gw + "/stock/apple", "", http.DefaultClient, 200, `"caller":"gateway","count":12`, 0, ""},
		{"unknown sku", "GET", gw + "/stock/kiwi", "", http.DefaultClient, 404, "unknown sku kiwi", 0, ""},
		{"order calls inventory", "POST", gw + "/orders", `{"sku":"apple","qty":2}`, http.DefaultClient, 201, `"qty":2,"sku":"apple","stock_from":"inventory/v`, 0, ""},
		{"order out of stock", "POST", gw + "/orders", `{"sku":"plum","qty":1}`, http.DefaultClient, 409, "only 0 plum in stock", 0, ""},
		{"sku not valid in a URL", "POST", gw + "/orders", `{"sku":"%zz","qty":1}`, http.DefaultClient, 404, "inventory: 404", 0, ""},
		{"bad order", "POST", gw + "/orders", `nonsense`, http.DefaultClient, 400, "want", 0, ""},
		// The agents apply mesh.yaml's allow lists in both runs.
		{"gateway may only POST orders", "GET", gw + "/orders", "", http.DefaultClient, 403, "gateway may not call orders", 0, ""},
		{"micro service", "POST", gw + "/time", "UTC", http.DefaultClient, 200, "Z\n", 0, ""},
		{"micro error", "POST", gw + "/time", "Mars/Base", http.DefaultClient, 400, "unknown time zone", 0, ""},
		{"no route", "GET", gw + "/nowhere", "", http.DefaultClient, 404, "no-route", 0, ""},
		{"proxy by name", "GET", "http://inventory/stock/pear", "", viaProxy, 200, `"caller":"web","count":3`, 0, ""},
		{"proxy no instance of the subset", "GET", "http://v3.inventory/stock/pear", "", viaProxy, 503, "no instance of inventory@v3", 0, ""},
		{"proxy no such service", "GET", "http://nobody/", "", viaProxy, 503, "no instance of nobody", 403, "egress-denied"},
		// Hosts outside the mesh: the mesh file allows none.
		{"proxy outside the mesh", "GET", "http://example.com/", "", viaProxy, 403, `egress-denied: "example.com" is outside the mesh`, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, want := tc.status, tc.want
			if auth && tc.authStatus != 0 {
				status, want = tc.authStatus, tc.authWant
			}
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != status || !strings.Contains(string(body), want) {
				t.Errorf("got %d %s, want %d with %q", resp.StatusCode, body, status, want)
			}
		})
	}

	// The beta header route sends every marked call to v2.
	for range 20 {
		req, _ := http.NewRequest("GET", gw+"/stock/pear", nil)
		req.Header.Set("X-Beta", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"served_by":"inventory/v2"`) {
			t.Fatalf("x-beta: 1 answered by %s, want inventory/v2", body)
		}
	}

	// Both inventory subsets take calls for any instance: the canary split
	// sends a tenth to v2 (0.9^300: never all to v1).
	seen := map[string]bool{}
	for i := 0; i < 300 && len(seen) < 2; i++ {
		resp, err := http.Get(gw + "/stock/pear")
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			ServedBy string `json:"served_by"`
		}
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		seen[v.ServedBy] = true
	}
	if !seen["inventory/v1"] || !seen["inventory/v2"] {
		t.Errorf("load not shared across instances: %v", seen)
	}
}
