package shop

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// Load sends rate requests per second to the edge gateway at gatewayURL
// (http://host:port) until ctx ends: a round of stock look-ups, orders
// (which call inventory through the mesh, one out of stock) and the
// clock, so every service the gateway reaches, and inventory through
// orders, shows traffic. Answers are read and dropped; failures are
// ignored (the dashboard shows them). rate must be positive.
func Load(ctx context.Context, gatewayURL string, rate int) {
	calls := []struct{ method, path, body string }{
		{"GET", "/stock/apple", ""},
		{"POST", "/orders", `{"sku":"apple","qty":1}`},
		{"GET", "/stock/pear", ""},
		{"POST", "/orders", `{"sku":"plum","qty":1}`},
		{"POST", "/time", "Europe/Paris"},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := calls[i%len(calls)]
		req, err := http.NewRequestWithContext(ctx, c.method, gatewayURL+c.path, strings.NewReader(c.body))
		if err != nil {
			continue
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}
