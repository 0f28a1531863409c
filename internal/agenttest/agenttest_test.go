package agenttest_test

import (
	"io"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of the test's HTTP client.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// TestStart starts a service and a caller and sends one call between them;
// goleak checks that t.Cleanup stopped both.
func TestStart(t *testing.T) {
	b := meshtest.Broker(t)
	agenttest.Start(t, b, agent.Config{Service: "orders"},
		agenttest.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	web := agenttest.Start(t, b, agent.Config{Service: "web"})
	resp, err := (&http.Client{Transport: web.Transport()}).Get("http://orders/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}
