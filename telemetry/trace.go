package telemetry

import (
	"context"
	"net/textproto"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCarrier is a propagation.TextMapCarrier over a NATS message's
// header, the way the W3C trace context (traceparent, tracestate) travels
// between agents. Names are matched case-insensitively, as HTTP and gRPC
// headers are, since a call's header holds its HTTP headers (canonical,
// "Traceparent") or its gRPC metadata (lower case) as the service sent
// them; Set writes the canonical name and removes any other spelling, so a
// header never carries two trace contexts.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key.
func (h HeaderCarrier) Get(key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	if vs := h[canonical(key)]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, key) {
			return vs[0]
		}
	}
	return ""
}

// Set replaces every spelling of key with value under the canonical name.
func (h HeaderCarrier) Set(key, value string) {
	ck := canonical(key)
	for k := range h {
		if k != ck && strings.EqualFold(k, key) {
			delete(h, k)
		}
	}
	h[ck] = []string{value}
}

// canonical is textproto's canonical form of key, without its work for
// the keys W3C propagation asks for on every call.
func canonical(key string) string {
	switch key {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	}
	return textproto.CanonicalMIMEHeaderKey(key)
}

// Keys lists the header's names.
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// hasTraceparent reports whether h carries a trace context, cheaply (no
// parsing): the exact spellings HTTP and gRPC use first.
func hasTraceparent(h nats.Header) bool {
	if len(h["Traceparent"]) > 0 || len(h["traceparent"]) > 0 {
		return true
	}
	for k := range h {
		if strings.EqualFold(k, "traceparent") {
			return true
		}
	}
	return false
}

// remoteParent returns ctx with the span context h carries as its remote
// parent, or ctx as it is when h carries none (or an invalid one).
func (t *Telemetry) remoteParent(ctx context.Context, h nats.Header) context.Context {
	if !hasTraceparent(h) {
		return ctx
	}
	ext := t.prop.Extract(context.Background(), HeaderCarrier(h))
	sc := trace.SpanContextFromContext(ext)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// traceID is the trace a call belongs to, for its access log line: its
// span's, or, with tracing off, the one its header carries.
func (t *Telemetry) traceID(ctx context.Context, h nats.Header) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	if sc := trace.SpanContextFromContext(t.remoteParent(context.Background(), h)); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}
