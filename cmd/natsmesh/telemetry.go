package main

import (
	"flag"
	"io"

	"github.com/natsmesh/natsmesh/telemetry"
)

// telemetryFlags are the observability flags of the agent and the bridge.
// Metrics are on by default (they cost little and feed /metrics and
// `natsmesh stat`); traces follow the standard OTEL_* variables.
// --telemetry off records nothing at all, for measuring what telemetry
// costs (natsmesh bench) or for a component whose calls no one watches.
type telemetryFlags struct {
	mode      string
	accessLog telemetry.AccessLog
	format    string
}

func (tf *telemetryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&tf.mode, "telemetry", "on", "telemetry `mode`: on (call metrics on /metrics and in natsmesh stat, traces as the OTEL_* variables say) or off (no metrics, traces or access log: no telemetry middleware at all)")
	fs.Var(&tf.accessLog, "access-log", "access log `mode`: off, on, or sample=F (log that fraction of successful calls and every failed one); one line per call on stdout")
	fs.StringVar(&tf.format, "access-log-format", "text", "access log `format`: text or json")
}

// build returns the component's Telemetry, named service in traces; nil
// (which records nothing) with --telemetry off.
func (tf *telemetryFlags) build(service string, stdout io.Writer) (*telemetry.Telemetry, error) {
	if tf.format != "text" && tf.format != "json" {
		return nil, usageErrorf("--access-log-format %q: want text or json", tf.format)
	}
	switch tf.mode {
	case "on":
	case "off":
		if tf.accessLog.On {
			return nil, usageErrorf("--access-log %s needs --telemetry on", tf.accessLog)
		}
		return nil, nil
	default:
		return nil, usageErrorf("--telemetry %q: want on or off", tf.mode)
	}
	tel, err := telemetry.New(telemetry.Config{
		Service:         service,
		AccessLog:       tf.accessLog.Logger(stdout, tf.format == "json"),
		AccessLogSample: tf.accessLog.Sample,
	})
	return tel, err
}
