package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestAgentMetricsAndAccessLog: the agent serves its call metrics on the
// admin port's /metrics, and with --access-log on writes one JSON line per
// call on stdout.
func TestAgentMetricsAndAccessLog(t *testing.T) {
	natsURL := startBrokerProc(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	ordersAdmin := freeAddr(t)
	orders := startProc(t, "agent", "--service", "orders", "--upstream", up.URL, "--nats", natsURL,
		"--proxy", "off", "--grpc-proxy", "off", "--admin", ordersAdmin, "--health-interval", "100ms")
	waitHTTP(t, orders, "http://"+ordersAdmin+"/readyz")
	proxy, admin := freeAddr(t), freeAddr(t)
	web := startProc(t, "agent", "--service", "web", "--nats", natsURL, "--proxy", proxy, "--grpc-proxy", "off", "--admin", admin,
		"--access-log", "on", "--access-log-format", "json")
	waitHTTP(t, web, "http://"+admin+"/readyz")

	proxyURL, _ := url.Parse("http://" + proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	for range 3 {
		resp, err := client.Get("http://orders/items")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `natsmesh_outbound_requests_total{callee="orders",caller="web",mesh_error="",proto="http",route="",status_class="2xx",subset=""} 3`
	if !strings.Contains(string(page), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, page)
	}
	web.waitUntil(t, "three access log lines", func() error {
		lines := strings.Split(strings.TrimSpace(web.stdout.String()), "\n")
		if len(lines) != 3 {
			return fmt.Errorf("%d lines: %q", len(lines), web.stdout.String())
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(lines[2]), &l); err != nil {
			return err
		}
		if l["callee"] != "orders" || l["status"] != float64(200) || l["dir"] != "outbound" {
			return fmt.Errorf("line %s", lines[2])
		}
		return nil
	})
}

// TestAgentTelemetryOff: with --telemetry off the agent still carries calls
// but records none: /metrics is not served. An access log needs telemetry
// on, so asking for both is a usage error (exit 2).
func TestAgentTelemetryOff(t *testing.T) {
	natsURL := startBrokerProc(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	ordersAdmin := freeAddr(t)
	orders := startProc(t, "agent", "--service", "orders", "--upstream", up.URL, "--nats", natsURL, "--telemetry", "off",
		"--proxy", "off", "--grpc-proxy", "off", "--admin", ordersAdmin, "--health-interval", "100ms")
	waitHTTP(t, orders, "http://"+ordersAdmin+"/readyz")
	proxy, admin := freeAddr(t), freeAddr(t)
	web := startProc(t, "agent", "--service", "web", "--nats", natsURL, "--proxy", proxy, "--grpc-proxy", "off", "--admin", admin,
		"--telemetry", "off")
	waitHTTP(t, web, "http://"+admin+"/readyz")
	proxyURL, _ := url.Parse("http://" + proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get("http://orders/items")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("call with telemetry off: %s %q", resp.Status, body)
	}
	for _, a := range []string{admin, ordersAdmin} {
		resp, err := http.Get("http://" + a + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/metrics with telemetry off: %s, want 404", resp.Status)
		}
	}
	for _, args := range [][]string{
		{"--telemetry", "off", "--access-log", "on"},
		{"--telemetry", "sometimes"},
	} {
		cmd, _, stderr := natsmesh(t, nil, append([]string{"agent", "--service", "web", "--nats", natsURL, "--proxy", "off", "--grpc-proxy", "off", "--admin", "off", "--upstream", up.URL}, args...)...)
		if code := exitStatus(t, cmd.Run()); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr:\n%s", args, code, stderr)
		}
	}
}
