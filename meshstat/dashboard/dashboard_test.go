package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/browsertest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/statstest"
	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/meshstat/dashboard"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// startMesh runs a small mesh on an in-process broker: the stand-in shop
// (internal/statstest: instances whose $SRV.STATS counters advance), a
// NATS-native micro service, and two real agents, one serving an
// in-process handler and one calling it, with some traffic. It returns a
// server with the dashboard at /ui/, as the edge bridge's admin port has
// it.
func startMesh(t *testing.T) *httptest.Server {
	t.Helper()
	b := meshtest.Broker(t)
	statstest.Serve(t, meshtest.Conn(t, b), statstest.Shop()...)

	clock, err := micro.AddService(meshtest.Conn(t, b), micro.Config{Name: "clock", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "demo.clock", Handler: micro.HandlerFunc(func(r micro.Request) { r.Respond([]byte("12:00")) })}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clock.Stop() })

	agenttest.Start(t, b, agent.Config{Service: "search", Subset: "v1"},
		agenttest.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "found") })))
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	front := agenttest.Start(t, b, agent.Config{Service: "frontend", Telemetry: tel})
	client := &http.Client{Transport: front.Transport(), Timeout: 5 * time.Second}
	for range 5 {
		resp, err := client.Get("http://search/q?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A call out of the mesh through frontend's proxy: to a host the
	// mesh file (there is none) does not list.
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "outside") }))
	t.Cleanup(outside.Close)
	proxy := httptest.NewServer(front.HTTPProxy())
	t.Cleanup(proxy.Close)
	purl, _ := url.Parse(proxy.URL)
	viaProxy := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(purl)}, Timeout: 5 * time.Second}
	t.Cleanup(viaProxy.CloseIdleConnections)
	resp, err := viaProxy.Get(outside.URL + "/x")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("egress through frontend's proxy: %v %v", resp, err)
	}
	resp.Body.Close()

	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("admin")))
	h, err := dashboard.Handler(dashboard.Config{
		Sampler:     meshstat.NewSampler(nc, meshstat.GatherOptions{Quiet: 100 * time.Millisecond}),
		MinInterval: 100 * time.Millisecond, WarmUp: 100 * time.Millisecond, Refresh: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", http.StripPrefix("/ui", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHandler(t *testing.T) {
	srv := startMesh(t)
	resp, body := get(t, srv.URL+"/ui/")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte(`<script src="app.js">`)) {
		t.Fatalf("page: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, f := range []string{"app.js", "style.css"} {
		if resp, _ := get(t, srv.URL+"/ui/"+f); resp.StatusCode != 200 {
			t.Errorf("%s: %d", f, resp.StatusCode)
		}
	}
	resp, body = get(t, srv.URL+"/ui/api/graph")
	var g struct {
		meshstat.Report
		RefreshMS int64 `json:"refresh_ms"`
	}
	if err := json.Unmarshal(body, &g); err != nil || resp.StatusCode != 200 {
		t.Fatalf("graph: %d %v\n%s", resp.StatusCode, err, body)
	}
	if g.RefreshMS != 500 || g.WindowS != 2 || len(g.Edges) < 5 {
		t.Fatalf("graph: refresh %d, window %v, %d edges", g.RefreshMS, g.WindowS, len(g.Edges))
	}
	names := map[string]meshstat.Service{}
	for _, s := range g.Services {
		names[s.Name] = s
	}
	for _, want := range []string{"bridge", "inventory", "orders", "web", "payments", "clock", "search", "frontend"} {
		if _, ok := names[want]; !ok {
			t.Errorf("no service %s in %v", want, g.Services)
		}
	}
	if c := names["clock"]; c.Kind != meshstat.KindMicro || c.Instances != 1 {
		t.Errorf("clock %+v", c)
	}
	if e := names[meshstat.EgressOther]; e.Kind != meshstat.KindEgress {
		t.Errorf("the external destination: %+v, want kind %s", e, meshstat.KindEgress)
	}
	if _, err := dashboard.Handler(dashboard.Config{}); err == nil {
		t.Error("a dashboard without a sampler")
	}
}

// TestBrowser loads the dashboard in headless Chromium: the page's own
// state (window.__natsmesh, rendered as data attributes) must show the
// mesh's services and edges, and its screenshot must not be blank. Set
// NATSMESH_SCREENSHOT=FILE to keep the screenshot.
func TestBrowser(t *testing.T) {
	browser := browsertest.New(t)
	srv := startMesh(t)
	url := srv.URL + "/ui/"

	page := browser.Load(url, os.Getenv("NATSMESH_SCREENSHOT"))
	dom := page.DOM
	if !strings.Contains(dom, `data-ready="true"`) {
		t.Fatalf("the page never rendered a report:\n%s", dom)
	}
	for _, want := range []string{
		`data-service="inventory"`, `data-service="orders"`, `data-service="bridge"`, `data-service="payments"`,
		`data-service="clock"`, `data-service="search"`, `data-service="(outside)"`,
		`data-caller="orders" data-callee="inventory"`, `data-caller="web" data-callee="payments"`,
		`data-caller="bridge" data-callee="orders"`,
		`data-caller="frontend" data-callee="egress:_other"`, `other external hosts`,
		`data-instances="3"`, // inventory: two v1, one v2
		`34.0`,               // inventory's requests per second
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	img := page.Screenshot
	b := img.Bounds()
	colours, inked := browsertest.Paint(img, b, 0xf4f6f9) // the page's background grey
	if colours < 50 || float64(inked) < 0.05*float64(b.Dx()*b.Dy()) {
		t.Fatalf("the screenshot looks blank: %d colours, %d of %d pixels not background", colours, inked, b.Dx()*b.Dy())
	}
	t.Logf("screenshot: %dx%d, %d colours, %.0f%% not background", b.Dx(), b.Dy(), colours, 100*float64(inked)/float64(b.Dx()*b.Dy()))
}
