package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
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
//
// The clock has a mesh caller too: a stand-in gateway "kiosk" whose route
// to nats:demo.clock reports its latency, while a NATS client calls the
// clock all along, so that its counters advance in every window. Routes
// adds handlers to the server beside the dashboard.
func startMesh(t *testing.T, routes ...func(*http.ServeMux)) *httptest.Server {
	t.Helper()
	b := meshtest.Broker(t)
	clockLatency := make([]uint64, len(statstest.Bounds)+1)
	clockLatency[3] = 6 // 2.5-5 ms
	statstest.Serve(t, meshtest.Conn(t, b), append(statstest.Shop(), statstest.Instance{Service: "kiosk", ID: "k1", Kind: meshstat.KindBridge, Serving: true,
		Flows: []statstest.Flow{{Peer: "nats:demo.clock", Proto: "http", Requests: 6, Latency: clockLatency}}})...)

	clock, err := micro.AddService(meshtest.Conn(t, b), micro.Config{Name: "clock", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "demo.clock", Handler: micro.HandlerFunc(func(r micro.Request) { r.Respond([]byte("12:00")) })}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clock.Stop() })
	callerNC := meshtest.Conn(t, b)
	t.Cleanup(meshtest.Repeat(20*time.Millisecond, func() bool {
		callerNC.Request("demo.clock", nil, time.Second)
		return true
	}))

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
	for _, r := range routes {
		r(mux)
	}
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
// mesh's services and edges, the NATS-native clock's latency among them,
// and its screenshot must not be blank. Set
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
	// A NATS-native service's node shows the latency its mesh callers
	// see, as its edge does (issue 19: "–" beside an edge with a p99).
	if m := regexp.MustCompile(`data-service="clock" data-kind="micro"[^>]*data-p99="([^"]*)"`).FindStringSubmatch(dom); m == nil || m[1] == "" {
		t.Errorf("the clock (micro) shows no p99: %q", m)
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

// labelCheck is a page of the test's own, on the dashboard's origin, that
// loads the dashboard in a frame and, once it rendered, measures every
// edge label there with the browser's own geometry (getBBox, and points
// along each edge's path) and writes what overlaps what into #result:
// a label on another label, on a node, or on an edge other than its own.
const labelCheck = `<!doctype html><html><body>
<iframe id="f" src="/ui/" width="1200" height="900"></iframe>
<pre id="result"></pre>
<script>
function near(r, p, pad) { return p.x >= r.x - pad && p.x <= r.x + r.width + pad && p.y >= r.y - pad && p.y <= r.y + r.height + pad; }
function meets(a, b) { return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height; }
function check() {
  var d = document.getElementById("f").contentDocument;
  if (!d || !d.body || d.body.getAttribute("data-ready") !== "true") { setTimeout(check, 50); return; }
  var svg = d.getElementById("svg"), problems = [];
  var labels = Array.prototype.slice.call(svg.querySelectorAll("g.labels text"));
  var edges = Array.prototype.slice.call(svg.querySelectorAll("g.edge"));
  var nodes = Array.prototype.slice.call(svg.querySelectorAll("g.node"));
  var boxes = labels.map(function (l) { return l.getBBox(); });
  labels.forEach(function (l, i) {
    var name = l.getAttribute("data-caller") + ">" + l.getAttribute("data-callee"), r = boxes[i];
    for (var j = i + 1; j < labels.length; j++) {
      if (meets(r, boxes[j])) problems.push(name + " label on " + labels[j].getAttribute("data-caller") + ">" + labels[j].getAttribute("data-callee") + " label");
    }
    nodes.forEach(function (n) {
      var m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(n.getAttribute("transform")), box = n.querySelector("rect.box");
      var nr = { x: +m[1], y: +m[2], width: +box.getAttribute("width"), height: +box.getAttribute("height") };
      if (meets(r, nr)) problems.push(name + " label on node " + n.getAttribute("data-service"));
    });
    edges.forEach(function (e) {
      var other = e.getAttribute("data-caller") + ">" + e.getAttribute("data-callee");
      if (other === name) return;
      var p = e.querySelector("path"), len = p.getTotalLength();
      for (var s = 0; s <= len; s += 2) {
        if (near(r, p.getPointAtLength(s), 0)) { problems.push(name + " label on edge " + other); return; }
      }
    });
  });
  document.getElementById("result").textContent = JSON.stringify({ labels: labels.length, problems: problems });
  document.body.setAttribute("data-checked", "true");
}
check();
</script></body></html>`

// TestBrowserLabels: no edge label of the dashboard's graph sits on
// another label, on a node or on another edge, as the browser lays them
// out (issue 19: labels sat on other edges).
func TestBrowserLabels(t *testing.T) {
	browser := browsertest.New(t)
	srv := startMesh(t, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /check.html", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, labelCheck) })
	})
	browser.Height = 900
	page := browser.Load(srv.URL+"/check.html", os.Getenv("NATSMESH_SCREENSHOT_LABELS"))
	m := regexp.MustCompile(`<pre id="result">([^<]*)</pre>`).FindStringSubmatch(page.DOM)
	if m == nil || !strings.Contains(page.DOM, `data-checked="true"`) {
		t.Fatalf("the check did not run:\n%s", page.DOM)
	}
	var res struct {
		Labels   int
		Problems []string
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &res); err != nil {
		t.Fatalf("%v: %s", err, m[1])
	}
	if res.Labels < 7 {
		t.Errorf("%d edge labels, want one for each of the 7 edges with traffic", res.Labels)
	}
	for _, p := range res.Problems {
		t.Errorf("overlap: %s", p)
	}
}

// TestBrowserFirstPaint: the page comes with the mesh in it. With
// api/graph refusing every poll, the page loaded in headless Chromium
// still has the services' rows and graph, and no "loading…" (issue 19:
// it showed "loading…" and empty tables until its first poll).
func TestBrowserFirstPaint(t *testing.T) {
	browser := browsertest.New(t)
	var polls atomic.Int64
	srv := startMesh(t, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /ui/api/graph", func(w http.ResponseWriter, r *http.Request) {
			polls.Add(1)
			http.Error(w, "no polls in this test", http.StatusServiceUnavailable)
		})
	})
	dom := browser.Load(srv.URL+"/ui/", "").DOM
	for _, want := range []string{`data-ready="true"`, `<tr data-service="inventory">`, `<tr data-service="clock">`,
		`data-caller="orders" data-callee="inventory"`, "10 services"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(dom, "loading…") {
		t.Error(`the page says "loading…"`)
	}
	if t.Failed() {
		t.Logf("DOM (%d polls, all refused):\n%s", polls.Load(), dom)
	}
}
