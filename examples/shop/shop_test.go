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

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestShop(t *testing.T) {
	b := meshtest.Broker(t)
	src, err := Policies(context.Background(), meshtest.Conn(t, b), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	m, err := Start(Config{
		Policies: src,
		Connect: func(service string) (*nats.Conn, error) {
			return nats.Connect(b.ClientURL(), nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		},
		Gateway: "127.0.0.1:0",
		Proxy:   "127.0.0.1:0",
	})
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
	}{
		{"stock via gateway", "GET", gw + "/stock/apple", "", http.DefaultClient, 200, `"caller":"gateway","count":12`},
		{"unknown sku", "GET", gw + "/stock/kiwi", "", http.DefaultClient, 404, "unknown sku kiwi"},
		{"order calls inventory", "POST", gw + "/orders", `{"sku":"apple","qty":2}`, http.DefaultClient, 201, `"qty":2,"sku":"apple","stock_from":"inventory/v`},
		{"order out of stock", "POST", gw + "/orders", `{"sku":"plum","qty":1}`, http.DefaultClient, 409, "only 0 plum in stock"},
		{"sku not valid in a URL", "POST", gw + "/orders", `{"sku":"%zz","qty":1}`, http.DefaultClient, 404, "inventory: 404"},
		{"bad order", "POST", gw + "/orders", `nonsense`, http.DefaultClient, 400, "want"},
		{"micro service", "POST", gw + "/time", "UTC", http.DefaultClient, 200, "Z\n"},
		{"micro error", "POST", gw + "/time", "Mars/Base", http.DefaultClient, 400, "unknown time zone"},
		{"no route", "GET", gw + "/nowhere", "", http.DefaultClient, 404, "no-route"},
		{"proxy by name", "GET", "http://inventory/stock/pear", "", viaProxy, 200, `"caller":"web","count":3`},
		{"proxy no instance", "GET", "http://nobody/", "", viaProxy, 503, "no instance of nobody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Errorf("got %d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.want)
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
