package shop

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/browsertest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshstat"
)

// The edges the demo's load drives: outside clients call the gateway,
// which routes to orders, inventory and clock; orders calls inventory.
var demoEdges = [][2]string{
	{"(outside)", "gateway"},
	{"gateway", "orders"}, {"gateway", "inventory"}, {"gateway", "clock"},
	{"orders", "inventory"},
}

// TestDemoDashboard runs the demo as `natsmesh demo` does (RunDemo, on
// free loopback ports, with its background load), waits until its stats
// show traffic, and loads its dashboard in headless Chromium (issue 12):
// the page's own state, the data attributes it renders, must show the
// demo's services and the calls between them with their rates, and the
// screenshot must show a graph, not a blank page. Set
// NATSMESH_DEMO_SCREENSHOT=FILE to keep the screenshot.
func TestDemoDashboard(t *testing.T) {
	browser := browsertest.New(t)
	browser.Width, browser.Height = 1280, 900
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := RunDemo(ctx, DemoConfig{Listen: "127.0.0.1:0", Monitor: "off", Gateway: "127.0.0.1:0",
		Proxy: "127.0.0.1:0", Admin: "127.0.0.1:0", Load: 25})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})

	// The dashboard's own API, until every edge of the load has a rate
	// (its first report needs two gatherings of $SRV.STATS).
	meshtest.CheckFor(t, 10*time.Second, 200*time.Millisecond, func() error {
		resp, err := http.Get(d.Addresses.Dashboard + "api/graph")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var rep meshstat.Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return err
		}
		rps := map[[2]string]float64{}
		for _, e := range rep.Edges {
			rps[[2]string{e.Caller, e.Callee}] = e.RPS
		}
		for _, s := range rep.Services {
			for _, c := range s.Callers {
				if c.Caller == "" && s.Kind == meshstat.KindBridge {
					rps[[2]string{"(outside)", s.Name}] = c.RPS
				}
			}
		}
		for _, e := range demoEdges {
			if rps[e] <= 0 {
				return fmt.Errorf("no traffic on %s -> %s yet: %v", e[0], e[1], rps)
			}
		}
		return nil
	})

	page := browser.Load(d.Addresses.Dashboard, os.Getenv("NATSMESH_DEMO_SCREENSHOT"))
	nodes, edges := graphOf(page.DOM)
	if !strings.Contains(page.DOM, `data-ready="true"`) || len(nodes) == 0 {
		t.Fatalf("the page never rendered a report:\n%s", page.DOM)
	}
	for _, want := range []struct {
		name, kind string
		instances  int
		busy       bool // a rate above zero
	}{
		{"gateway", "bridge", 1, true},
		{"orders", "agent", 1, true},
		{"inventory", "agent", 2, true},
		{"clock", "micro", 1, true},
		{"web", "agent", 1, false}, // the curl proxy: idle under the load
	} {
		n, ok := nodes[want.name]
		switch {
		case !ok:
			t.Errorf("the graph has no node %s: %v", want.name, nodes)
		case n["data-kind"] != want.kind || n["data-instances"] != strconv.Itoa(want.instances) || n["data-serving"] != n["data-instances"]:
			t.Errorf("node %s: %v, want kind %s, %d instances, all serving", want.name, n, want.kind, want.instances)
		case want.busy && rate(n) <= 0:
			t.Errorf("node %s has no rate: %v", want.name, n)
		}
	}
	if _, ok := nodes["(outside)"]; !ok {
		t.Errorf("the graph has no (outside) node for the gateway's clients: %v", nodes)
	}
	if !strings.Contains(page.DOM, "2/2 instances serving · v1, v2") {
		t.Error("the inventory node does not show its subsets v1 and v2")
	}
	for _, e := range demoEdges {
		a, ok := edges[e]
		switch {
		case !ok:
			t.Errorf("the graph has no edge %s -> %s", e[0], e[1])
		case rate(a) <= 0 || a["data-success"] != "1":
			t.Errorf("edge %s -> %s: %v, want a rate and every call a success", e[0], e[1], a)
		}
	}
	if len(edges) != len(demoEdges) {
		t.Errorf("the graph has %d edges, want the load's %d: %v", len(edges), len(demoEdges), edges)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", page.DOM)
	}

	// The screenshot: not blank, and a graph of healthy (green) nodes and
	// edges in the graph panel, the top of the page.
	img := page.Screenshot
	b := img.Bounds()
	colours, inked := browsertest.Paint(img, b, pageBackground)
	if b.Dx() != browser.Width || colours < 50 || float64(inked) < 0.05*float64(b.Dx()*b.Dy()) {
		t.Errorf("the screenshot looks blank: %v, %d colours, %d of %d pixels not background", b, colours, inked, b.Dx()*b.Dy())
	}
	graph := image.Rect(0, 110, b.Dx(), b.Dy()/2)
	_, graphInk := browsertest.Paint(img, graph, pageBackground)
	green := 0
	for y := graph.Min.Y; y < graph.Max.Y; y++ {
		for x := graph.Min.X; x < graph.Max.X; x++ {
			if near(browsertest.RGB(img, x, y), okGreen) {
				green++
			}
		}
	}
	if graphInk < 5000 || green < 1500 {
		t.Errorf("the graph panel %v looks empty: %d pixels not background, %d of them the healthy green", graph, graphInk, green)
	}
	t.Logf("screenshot %s: %dx%d, %d colours, %.0f%% not background; graph panel: %d pixels of ink, %d green",
		page.ScreenshotFile, b.Dx(), b.Dy(), colours, 100*float64(inked)/float64(b.Dx()*b.Dy()), graphInk, green)
}

const (
	pageBackground = 0xf4f6f9 // style.css --bg
	okGreen        = 0x1f9d55 // style.css --ok: success >= 99.5%
)

// near reports whether two 0xRRGGBB colours differ by at most 24 in each
// channel (antialiasing and the edges' opacity).
func near(a, b uint32) bool {
	for shift := 0; shift <= 16; shift += 8 {
		d := int(a>>shift&0xff) - int(b>>shift&0xff)
		if d < -24 || d > 24 {
			return false
		}
	}
	return true
}

var (
	svgGroup  = regexp.MustCompile(`<g\s[^>]*>`)
	attribute = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
)

// graphOf reads the service graph the dashboard drew from its DOM: its
// nodes (<g class="node ..." data-service=...>) by name and its edges
// (<g class="edge ..." data-caller=... data-callee=...>) by caller and
// callee, each as its attributes.
func graphOf(dom string) (nodes map[string]map[string]string, edges map[[2]string]map[string]string) {
	nodes, edges = map[string]map[string]string{}, map[[2]string]map[string]string{}
	for _, g := range svgGroup.FindAllString(dom, -1) {
		attrs := map[string]string{}
		for _, m := range attribute.FindAllStringSubmatch(g, -1) {
			attrs[m[1]] = m[2]
		}
		switch class, _, _ := strings.Cut(attrs["class"], " "); class {
		case "node":
			nodes[attrs["data-service"]] = attrs
		case "edge":
			edges[[2]string{attrs["data-caller"], attrs["data-callee"]}] = attrs
		}
	}
	return nodes, edges
}

func rate(attrs map[string]string) float64 {
	v, _ := strconv.ParseFloat(attrs["data-rps"], 64)
	return v
}
