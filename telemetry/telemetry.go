package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ErrConfig is wrapped by every error about an invalid Config or OTEL_*
// setting.
var ErrConfig = errors.New("telemetry: invalid configuration")

// scope is the instrumentation scope of the mesh's metrics and spans.
const scope = "github.com/natsmesh/natsmesh"

// Config says what a Telemetry records and where it sends it. The zero
// value records metrics (for /metrics and $SRV.STATS), traces only when the
// OTEL_* environment asks for an exporter, and no access log.
type Config struct {
	// Service names the component in traces (the resource's service.name).
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over it. Default
	// "natsmesh".
	Service string
	// TracerProvider makes the spans when set; the application owns it
	// (Shutdown does not shut it down). Nil: traces go to an OTLP exporter
	// when the standard environment configures one (OTEL_TRACES_EXPORTER=otlp,
	// or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// set; OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf, the default),
	// and otherwise nothing traces: no span is made and a call costs no more
	// than passing its traceparent on.
	TracerProvider trace.TracerProvider
	// AccessLog receives one line per call (see [AccessLog]); nil logs none.
	AccessLog *slog.Logger
	// AccessLogSample is the fraction of successful calls that are logged,
	// in (0, 1]; zero means 1. Failed calls are always logged.
	AccessLogSample float64
}

// Telemetry records the calls of one mesh component (an agent, or the edge
// gateway): metrics of every call on its own Prometheus registry (served by
// [Telemetry.MetricsHandler]), the cumulative per-edge counters of
// [Telemetry.Snapshot], spans when tracing is on, and access logs. The
// middleware that records comes from [Telemetry.OutboundCall],
// [Telemetry.OutboundAttempt] and [Telemetry.Inbound]; package chain puts
// them in their places.
//
// A nil *Telemetry records nothing: its middleware is nil and its methods
// do nothing.
type Telemetry struct {
	m      *metrics
	tracer trace.Tracer // nil: tracing off
	prop   propagation.TextMapPropagator
	log    *accessLog // nil: no access log
	reg    *prometheus.Registry
	start  time.Time

	shutdownOnce sync.Once
	shutdown     []func(context.Context) error
}

// New returns a Telemetry as cfg and the OTEL_* environment say.
func New(cfg Config) (*Telemetry, error) {
	if cfg.AccessLogSample < 0 || cfg.AccessLogSample > 1 {
		return nil, fmt.Errorf("%w: access log sample %v not in (0, 1]", ErrConfig, cfg.AccessLogSample)
	}
	if cfg.Service == "" {
		cfg.Service = "natsmesh"
	}
	res, err := resource.New(context.Background(),
		resource.WithAttributes(semconv.ServiceName(cfg.Service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("%w: resource: %w", ErrConfig, err)
	}
	t := &Telemetry{prop: propagation.TraceContext{}, start: time.Now()}

	tp := cfg.TracerProvider
	if tp == nil {
		sdk, err := tracerFromEnv(res)
		if err != nil {
			return nil, err
		}
		if sdk != nil {
			tp = sdk
			t.shutdown = append(t.shutdown, sdk.Shutdown)
		}
	}
	if tp != nil {
		t.tracer = tp.Tracer(scope)
	}

	t.reg = prometheus.NewRegistry()
	t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(t.reg), otelprom.WithoutScopeInfo())
	if err != nil {
		t.Shutdown(context.Background())
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(exp), sdkmetric.WithResource(res)}
	if t.tracer == nil {
		// Exemplars name a trace; with no tracing here the SDK would
		// still offer every measurement whose context carries a
		// caller's sampled trace context.
		opts = append(opts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if t.m, err = newMetrics(mp.Meter(scope)); err != nil {
		t.Shutdown(context.Background())
		return nil, err
	}
	if cfg.AccessLog != nil {
		t.log = &accessLog{log: cfg.AccessLog, sample: cfg.AccessLogSample}
		if t.log.sample == 0 {
			t.log.sample = 1
		}
	}
	return t, nil
}

// tracerFromEnv builds the OTLP trace pipeline the OTEL_* environment asks
// for, or returns nil when it asks for none. The exporters read the rest of
// their settings (endpoint, headers, TLS, timeout) from the environment
// themselves, and the SDK its sampler (OTEL_TRACES_SAMPLER) and batching
// (OTEL_BSP_*).
func tracerFromEnv(res *resource.Resource) (*sdktrace.TracerProvider, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	otlp := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if v := os.Getenv("OTEL_TRACES_EXPORTER"); v != "" {
		otlp = false
		for e := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(e) {
			case "otlp":
				otlp = true
			case "none":
			default:
				return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: natsmesh exports traces with otlp (or none)", ErrConfig, v)
			}
		}
	}
	if !otlp {
		return nil, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch proto {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(context.Background())
	case "grpc":
		exp, err = otlptracegrpc.New(context.Background())
	default:
		return nil, fmt.Errorf("%w: OTLP protocol %q: want grpc or http/protobuf", ErrConfig, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: OTLP trace exporter: %w", ErrConfig, err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// Tracing reports whether t makes spans.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracer != nil }

// MetricsHandler serves t's metrics in the Prometheus text format: the
// mesh's call metrics and the Go runtime's and process's, from t's own
// registry (never the global one, so two components in one process do not
// mix). A nil t serves 404.
func (t *Telemetry) MetricsHandler() http.Handler {
	if t == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{})
}

// Registry is t's Prometheus registry, for an application that adds its own
// collectors to the same /metrics page.
func (t *Telemetry) Registry() *prometheus.Registry {
	if t == nil {
		return nil
	}
	return t.reg
}

// SetServing records whether the instance of service (and subset) takes
// calls now: the natsmesh_serving gauge, 1 or 0. The agent calls it when
// health checks move the instance in or out of its queue groups.
func (t *Telemetry) SetServing(service, subset string, serving bool) {
	if t == nil {
		return
	}
	t.m.serving.set(service, subset, serving)
}

// SetEjected records whether passive health (outlier detection) keeps the
// instance of service (and subset) out of its queue groups: the
// natsmesh_ejected gauge, 1 or 0.
func (t *Telemetry) SetEjected(service, subset string, ejected bool) {
	if t == nil {
		return
	}
	t.m.ejected.set(service, subset, ejected)
}

// SetHealthy records whether the local service of the instance of service
// (and subset) passed its last health check: the natsmesh_healthy gauge, 1
// or 0. An agent that runs no health checks never calls it, and the gauge
// has no series.
func (t *Telemetry) SetHealthy(service, subset string, healthy bool) {
	if t == nil {
		return
	}
	t.m.healthy.set(service, subset, healthy)
}

// Shutdown flushes and stops the exporters t started (not a TracerProvider
// of Config). It is safe to call more than once.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	t.shutdownOnce.Do(func() {
		for _, f := range t.shutdown {
			errs = append(errs, f(ctx))
		}
	})
	return errors.Join(errs...)
}

// AccessLogging reports whether t writes an access log.
func (t *Telemetry) AccessLogging() bool { return t != nil && t.log != nil }
