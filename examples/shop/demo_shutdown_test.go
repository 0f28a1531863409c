package shop

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// With tracing on (an OTLP endpoint that refuses), Shutdown ends every
// part's telemetry too: each left a batch span processor running before.
func TestDemoShutdownLeavesNoGoroutines(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := RunDemo(ctx, DemoConfig{Listen: "127.0.0.1:0", Monitor: "off", Gateway: "127.0.0.1:0",
		Proxy: "127.0.0.1:0", Admin: "127.0.0.1:0", Load: 50})
	if err != nil {
		t.Fatal(err)
	}
	// The load has run through the mesh once the graph shows orders.
	meshtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(d.Addresses.Dashboard + "api/graph")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || !strings.Contains(string(b), `"orders"`) {
			return fmt.Errorf("graph without orders yet: %v %.200s", err, b)
		}
		return nil
	})
	http.DefaultClient.CloseIdleConnections()
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var after int
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		if after = runtime.NumGoroutine(); after <= before {
			return
		}
	}
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var extra []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if !strings.Contains(g, "testing.") {
			extra = append(extra, g)
		}
	}
	t.Errorf("goroutines: %d before, %d after Shutdown:\n%s", before, after, strings.Join(extra, "\n\n"))
}
