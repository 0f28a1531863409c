package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	grpccodes "google.golang.org/grpc/codes"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// accessLog writes one line per call.
type accessLog struct {
	log    *slog.Logger
	sample float64
}

// call logs one call, unless sampling skips it (never a failed one). The
// line, at level Info with message "call", has: dir (outbound or
// inbound), trace_id ("" when the call has no trace context), caller,
// callee, subset, proto, method (the HTTP method or gRPC method), path
// (HTTP), status (the HTTP status, or the gRPC code's name), mesh_error
// ("" for the service's own answer), duration_ms (milliseconds, a
// fraction below one), and, outbound, attempts.
func (l *accessLog) call(ctx context.Context, dir, traceID string, c *pipeline.Call, dest, subset string, o outcome, e *wire.Error, dur time.Duration, attempts int) {
	if !o.err && l.sample < 1 && rand.Float64() >= l.sample {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("dir", dir),
		slog.String("trace_id", traceID),
		slog.String("caller", c.Caller),
		slog.String("callee", dest),
		slog.String("subset", subset),
		slog.String("proto", string(c.Proto)),
		slog.String("method", c.Op))
	if c.Proto == wire.ProtoHTTP {
		attrs = append(attrs, slog.String("path", c.Path), slog.Int("status", o.code))
	} else {
		attrs = append(attrs, slog.String("status", grpccodes.Code(o.code).String()))
	}
	attrs = append(attrs, slog.String("mesh_error", kindLabel(o.kind)), slog.Float64("duration_ms", float64(dur)/float64(time.Millisecond)))
	if dir == "outbound" {
		attrs = append(attrs, slog.Int("attempts", attempts))
	}
	if o.kind > 0 {
		attrs = append(attrs, slog.String("error", e.Message))
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "call", attrs...)
}

func itoa(n int) string { return strconv.Itoa(n) }

// AccessLog is the setting of a command's --access-log flag: off, on, or
// sample=F (log that fraction of successful calls, every failed one).
// Its zero value is off. It implements flag.Value (and encoding's
// TextUnmarshaler).
type AccessLog struct {
	// On turns the access log on.
	On bool
	// Sample is the fraction of successful calls logged when On, in (0, 1].
	Sample float64
}

// String returns the setting as Set reads it.
func (a AccessLog) String() string {
	switch {
	case !a.On:
		return "off"
	case a.Sample == 0 || a.Sample == 1:
		return "on"
	}
	return "sample=" + strconv.FormatFloat(a.Sample, 'g', -1, 64)
}

// Set reads "off", "on" or "sample=F" with 0 < F <= 1.
func (a *AccessLog) Set(s string) error {
	switch s {
	case "off", "false", "":
		*a = AccessLog{}
		return nil
	case "on", "true":
		*a = AccessLog{On: true, Sample: 1}
		return nil
	}
	v, ok := strings.CutPrefix(s, "sample=")
	if !ok {
		return fmt.Errorf("%w: access log %q: want off, on or sample=F", ErrConfig, s)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f <= 1) {
		return fmt.Errorf("%w: access log %q: the sample is a fraction in (0, 1]", ErrConfig, s)
	}
	*a = AccessLog{On: true, Sample: f}
	return nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *AccessLog) UnmarshalText(b []byte) error { return a.Set(string(b)) }

// MarshalText implements encoding.TextMarshaler.
func (a AccessLog) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Logger returns the access logger a setting gives, writing to w as text
// or, with json, as JSON lines; nil when off.
func (a AccessLog) Logger(w io.Writer, json bool) *slog.Logger {
	if !a.On {
		return nil
	}
	if json {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
