package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// TestAccessLogDurationUnit: issue 19. The access log's duration names
// its unit (duration_ms, a number of milliseconds), so a JSON reader does
// not mistake nanoseconds for anything else.
func TestAccessLogDurationUnit(t *testing.T) {
	var buf bytes.Buffer
	l := &accessLog{log: slog.New(slog.NewJSONHandler(&buf, nil)), sample: 1}
	c := &pipeline.Call{Caller: "web", Proto: wire.ProtoHTTP, Op: "GET", Path: "/x"}
	l.call(context.Background(), "outbound", "", c, "orders", "", outcome{code: 200}, nil, 1500*time.Microsecond, 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if _, ok := line["duration"]; ok {
		t.Errorf("a duration without a unit: %s", buf.Bytes())
	}
	if got, ok := line["duration_ms"].(float64); !ok || got != 1.5 {
		t.Errorf("duration_ms = %v, want 1.5: %s", line["duration_ms"], buf.Bytes())
	}
}
