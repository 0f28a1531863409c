package main

import (
	"flag"
	"io"

	"github.com/natsmesh/natsmesh/telemetry"
)

// telemetryFlags are the observability flags of the agent and the bridge.
// Metrics are always on (they cost little and feed /metrics and `natsmesh
// stat`); traces follow the standard OTEL_* variables.
type telemetryFlags struct {
	accessLog telemetry.AccessLog
	format    string
}

func (tf *telemetryFlags) register(fs *flag.FlagSet) {
	fs.Var(&tf.accessLog, "access-log", "access log `mode`: off, on, or sample=F (log that fraction of successful calls and every failed one); one line per call on stdout")
	fs.StringVar(&tf.format, "access-log-format", "text", "access log `format`: text or json")
}

// build returns the component's Telemetry, named service in traces.
func (tf *telemetryFlags) build(service string, stdout io.Writer) (*telemetry.Telemetry, error) {
	if tf.format != "text" && tf.format != "json" {
		return nil, usageErrorf("--access-log-format %q: want text or json", tf.format)
	}
	tel, err := telemetry.New(telemetry.Config{
		Service:         service,
		AccessLog:       tf.accessLog.Logger(stdout, tf.format == "json"),
		AccessLogSample: tf.accessLog.Sample,
	})
	return tel, err
}
