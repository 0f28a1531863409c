package telemetry_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/telemetry"
)

// TestNatsCLI runs the nats CLI (natscli, when it is on PATH) against an
// agent: `nats micro ls` lists it, `nats micro info` shows its endpoints
// and serving state, `nats micro stats --json` its counts.
func TestNatsCLI(t *testing.T) {
	bin, err := exec.LookPath("nats")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nats CLI not installed; .ci/run installs it (go install github.com/nats-io/natscli/nats@v0.5.1)")
		}
		t.Skip("nats CLI not installed (go install github.com/nats-io/natscli/nats@v0.5.1)")
	}
	b := meshtest.Broker(t)
	tel := newTelemetry(t, telemetry.Config{})
	startAgent(t, b, agent.Config{Service: "orders", Subset: "v1", Version: "1.2.3", Telemetry: tel},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	web := startAgent(t, b, agent.Config{Service: "web"}, nil)
	client := &http.Client{Transport: web.Transport()}
	for range 3 {
		get(t, client, "http://orders/", nil)
	}
	get(t, client, "http://v1.orders/", nil)

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--server", b.ClientURL(), "--no-context"}, args...)...)
		cmd.Env = append(cmd.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("micro", "ls"); !strings.Contains(out, "orders") || !strings.Contains(out, "web") || !strings.Contains(out, "1.2.3") {
		t.Errorf("nats micro ls:\n%s", out)
	}
	if out := run("micro", "info", "orders"); !strings.Contains(out, "mesh.orders.v1.>") || !strings.Contains(out, "natsmesh.serving") {
		t.Errorf("nats micro info orders:\n%s", out)
	}
	out := run("micro", "stats", "orders", "--json")
	var stats []micro.Stats
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		var one micro.Stats
		if err2 := json.Unmarshal([]byte(out), &one); err2 != nil {
			t.Fatalf("nats micro stats --json: %v\n%s", err, out)
		}
		stats = []micro.Stats{one}
	}
	if len(stats) != 1 || len(stats[0].Endpoints) != 2 || stats[0].Endpoints[0].NumRequests != 3 || stats[0].Endpoints[1].NumRequests != 1 {
		t.Errorf("nats micro stats orders --json:\n%s", out)
	}
}
