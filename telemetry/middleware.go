package telemetry

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	grpccodes "google.golang.org/grpc/codes"

	"github.com/natsmesh/natsmesh/meshstat"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// Span attributes of the mesh's own, beside the semantic conventions'.
const (
	attrCaller    = attribute.Key("natsmesh.caller")
	attrCallee    = attribute.Key("natsmesh.callee")
	attrSubset    = attribute.Key("natsmesh.subset")
	attrMeshError = attribute.Key("natsmesh.mesh_error")
	attrAttempt   = attribute.Key("natsmesh.attempt")
	attrHedge     = attribute.Key("natsmesh.hedge")
	attrAttempts  = attribute.Key("natsmesh.attempts")
)

// callState is what the attempts of one outbound call tell the call's
// telemetry: how many there were, how many are in flight (an attempt that
// starts while another is in flight is a hedge, one that starts after the
// previous ended a retry), and the subset and route the routing picked.
type callState struct {
	attempts atomic.Int32
	inflight atomic.Int32
	mu       sync.Mutex
	subset   string
	route    string
}

type stateKey struct{}

// callee names a call's destination in metrics, the snapshot and logs: the
// service, "nats:SUBJECT" for a NATS-native endpoint (as a gateway route
// writes it), or "egress:ENTRY" for an external host, ENTRY being the
// host as the mesh file lists it, or "_other" for all the hosts it does
// not list (so the label's values stay bounded: meshstat.EgressPrefix).
func callee(c *pipeline.Call) string {
	switch {
	case c.Subject != "":
		return "nats:" + c.Subject
	case c.Egress != "":
		return meshstat.EgressPrefix + c.Egress
	}
	return c.Service
}

// routeOf is the name of the mesh file's route the call matched, as the
// routing middleware (which runs inside the call's telemetry, outside its
// attempts') leaves it in the attempt's context; "" for none.
func routeOf(ctx context.Context) string {
	r, _ := pipeline.RouteFrom(ctx)
	return r
}

// OutboundCall is the outermost outbound middleware: one measurement, one
// span (when tracing) and one access log line per call, as its caller saw
// it, mesh errors included. The span's parent is the trace context the
// call's own header carries (the service forwarded the traceparent of the
// request it is serving), else the context's span. It never changes the
// call. A nil t gives nil.
func (t *Telemetry) OutboundCall() pipeline.OutboundMiddleware {
	if t == nil {
		return nil
	}
	return func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (reply *pipeline.Reply, err error) {
			start := time.Now()
			dest := callee(c)
			st := &callState{subset: c.Subset}
			ctx = context.WithValue(ctx, stateKey{}, st)
			var span trace.Span
			if t.tracer != nil {
				ctx, span = t.tracer.Start(t.remoteParent(ctx, c.Header), spanName(c, dest),
					trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(callAttrs(c, dest)...))
			}
			flight := t.m.out.inFlight(c.Caller, dest, c.Proto)
			flight.Add(1)
			panicked := true
			defer func() {
				if panicked {
					// A middleware below panicked: the call is
					// recorded as an internal error, its span
					// ended, and the panic goes on.
					t.callDone(ctx, span, st, c, dest, start, flight, panicOutcome(c))
				}
			}()
			reply, err = next.Send(ctx, c)
			panicked = false
			if err == nil && reply.Streamed() {
				t.callDoneAtEnd(ctx, span, st, c, dest, start, flight, reply)
				return reply, nil
			}
			t.callDone(ctx, span, st, c, dest, start, flight, pipeline.OutcomeOf(c.Proto, reply, err))
			return reply, err
		})
	}
}

// callDoneAtEnd records an outbound call answered by a stream when the
// stream ends, with the outcome its end makes: the call lasts, and is in
// flight, until then. (A function of its own, so a whole reply's call
// pays for no closure.)
func (t *Telemetry) callDoneAtEnd(ctx context.Context, span trace.Span, st *callState, c *pipeline.Call, dest string,
	start time.Time, flight *atomic.Int64, reply *pipeline.Reply) {
	reply.OnEnd(func(w wire.Outcome) { t.callDone(ctx, span, st, c, dest, start, flight, w) })
}

// callDone records an outbound call that ended with outcome w.
func (t *Telemetry) callDone(ctx context.Context, span trace.Span, st *callState, c *pipeline.Call, dest string,
	start time.Time, flight *atomic.Int64, w wire.Outcome) {
	dur := time.Since(start)
	flight.Add(-1)

	o := classify(w)
	st.mu.Lock()
	subset, route := st.subset, st.route
	st.mu.Unlock()
	e := t.m.out.edge(edgeKey{caller: c.Caller, callee: dest, subset: subset, route: route, proto: c.Proto})
	t.m.out.record(ctx, e, o, dur)
	attempts := int(st.attempts.Load())
	if span != nil {
		span.SetAttributes(attrAttempts.Int(attempts))
		endSpan(span, c.Proto, o, w.Err)
	}
	if t.log != nil {
		t.log.call(ctx, "outbound", t.traceID(ctx, c.Header), c, dest, subset, o, w.Err, dur, attempts)
	}
}

// OutboundAttempt is the innermost outbound middleware of the mesh: it
// counts each attempt of a call (retries and hedges, as the resilience
// policies number them in pipeline.AttemptFrom), and when tracing
// makes a span per attempt, a child of the call's, whose trace context the
// attempt carries in its header (a clone: the caller's call is never
// changed). With tracing off, an attempt whose header carries no trace
// context gets the context's (an in-process handler's call made under the
// context of the call it serves), so traces still pass through. A nil t
// gives nil.
func (t *Telemetry) OutboundAttempt() pipeline.OutboundMiddleware {
	if t == nil {
		return nil
	}
	return func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			n, hedge := int32(1), false
			if st, _ := ctx.Value(stateKey{}).(*callState); st != nil {
				n = st.attempts.Add(1)
				hedge = st.inflight.Add(1) > 1
				defer st.inflight.Add(-1)
				// The resilience policies number their attempts and say
				// which are hedges; without them (a custom retry in
				// Config.Outbound), an attempt that starts while another
				// is in flight is a hedge.
				if a, ok := pipeline.AttemptFrom(ctx); ok {
					n, hedge = int32(a.Number), a.Hedge
				}
				subset, route := c.Subset, routeOf(ctx)
				st.mu.Lock()
				st.subset, st.route = subset, route
				st.mu.Unlock()
				if n > 1 {
					e := t.m.out.edge(edgeKey{caller: c.Caller, callee: callee(c), subset: subset, route: route, proto: c.Proto})
					if hedge {
						t.m.hedges.Add(ctx, 1, e.edgeOpts...)
					} else {
						t.m.retries.Add(ctx, 1, e.edgeOpts...)
					}
				}
			}
			if t.tracer == nil {
				if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !hasTraceparent(c.Header) {
					c = c.Clone()
					t.prop.Inject(ctx, HeaderCarrier(c.Header))
				}
				return next.Send(ctx, c)
			}
			dest := callee(c)
			ctx, span := t.tracer.Start(ctx, "send "+dest, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(
					semconv.MessagingSystemKey.String("nats"),
					semconv.MessagingOperationTypeSend,
					semconv.MessagingOperationName("request"),
					semconv.MessagingDestinationName(c.MeshSubject()),
					semconv.ServerAddress(dest),
					attrSubset.String(c.Subset),
					attrAttempt.Int(int(n)),
					attrHedge.Bool(hedge)))
			c = c.Clone()
			t.prop.Inject(ctx, HeaderCarrier(c.Header))
			panicked := true
			defer func() {
				if panicked {
					w := panicOutcome(c)
					endSpan(span, c.Proto, classify(w), w.Err)
				}
			}()
			reply, err := next.Send(ctx, c)
			panicked = false
			if err == nil && reply.Streamed() {
				endSpanAtEnd(span, c.Proto, reply)
				return reply, nil
			}
			w := pipeline.OutcomeOf(c.Proto, reply, err)
			endSpan(span, c.Proto, classify(w), w.Err)
			return reply, err
		})
	}
}

// Inbound is the outermost inbound middleware: one measurement, one span
// (when tracing: a child of the trace context the message carries, the
// caller's attempt) and one access log line per served call. When tracing,
// the local service gets the served span's trace context in its request's
// traceparent (a clone of the call), so a service that forwards it on its
// own calls continues the same trace. With tracing off the message's trace
// context passes through in the header as it came, and nothing is parsed.
// A nil t gives nil.
func (t *Telemetry) Inbound() pipeline.InboundMiddleware {
	if t == nil {
		return nil
	}
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (reply *pipeline.Reply, err error) {
			start := time.Now()
			flight := t.m.in.inFlight(c.Caller, c.Service, c.Proto)
			flight.Add(1)
			var span trace.Span
			if t.tracer != nil {
				ctx = t.remoteParent(ctx, c.Header)
				attrs := append(callAttrs(c, c.Service),
					semconv.MessagingSystemKey.String("nats"),
					semconv.MessagingOperationTypeProcess,
					semconv.MessagingDestinationName(c.MeshSubject()),
					semconv.MessagingConsumerGroupName(queueGroup(c)))
				ctx, span = t.tracer.Start(ctx, spanName(c, c.Service),
					trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
				c = c.Clone()
				t.prop.Inject(ctx, HeaderCarrier(c.Header))
			}
			panicked := true
			defer func() {
				if panicked {
					// The dispatch answers a panic as an internal error
					// (pipeline.Inbound); record it so.
					t.servedDone(ctx, span, c, start, flight, panicOutcome(c))
				}
			}()
			reply, err = next.ServeCall(ctx, c)
			panicked = false
			if err == nil && reply.Streamed() {
				t.servedDoneAtEnd(ctx, span, c, start, flight, reply)
				return reply, nil
			}
			t.servedDone(ctx, span, c, start, flight, pipeline.OutcomeOf(c.Proto, reply, err))
			return reply, err
		})
	}
}

// ServedHTTP records one HTTP request the edge gateway service served for
// an outside client, as an inbound call from caller "" (outside the mesh)
// to service, so that its $SRV.STATS and natsmesh_inbound_* metrics show
// the gateway's own traffic, requests the mesh refused before any call
// (no route, a bad path) included. err is the mesh error the gateway
// answered with, nil when it passed on the service's answer of HTTP
// status; dur runs from the request's arrival to the answer written. A
// call that failed counts as an error as Inbound counts it. A nil t
// records nothing.
func (t *Telemetry) ServedHTTP(ctx context.Context, service string, status int, err error, dur time.Duration) {
	if t == nil {
		return
	}
	o := outcome{status: httpClass(status), code: status, err: status >= 500}
	if err != nil {
		o = classify(wire.OutcomeOf(wire.ProtoHTTP, nil, err))
	}
	e := t.m.in.edge(edgeKey{caller: "", callee: service, proto: wire.ProtoHTTP})
	t.m.in.record(ctx, e, o, dur)
}

// servedDoneAtEnd records an inbound call answered by a stream when the
// stream ends (see callDoneAtEnd).
func (t *Telemetry) servedDoneAtEnd(ctx context.Context, span trace.Span, c *pipeline.Call, start time.Time, flight *atomic.Int64,
	reply *pipeline.Reply) {
	reply.OnEnd(func(w wire.Outcome) { t.servedDone(ctx, span, c, start, flight, w) })
}

// servedDone records an inbound call that ended with outcome w.
func (t *Telemetry) servedDone(ctx context.Context, span trace.Span, c *pipeline.Call, start time.Time, flight *atomic.Int64,
	w wire.Outcome) {
	dur := time.Since(start)
	flight.Add(-1)
	o := classify(w)
	subset := c.Subset
	e := t.m.in.edge(edgeKey{caller: c.Caller, callee: c.Service, subset: subset, proto: c.Proto})
	t.m.in.record(ctx, e, o, dur)
	if span != nil {
		endSpan(span, c.Proto, o, w.Err)
	}
	if t.log != nil {
		t.log.call(ctx, "inbound", t.traceID(ctx, c.Header), c, c.Service, subset, o, w.Err, dur, 0)
	}
}

// errPanic is what a call whose middleware or handler panicked is recorded
// as (in its metrics, span and log line): an internal error, as
// pipeline.Inbound answers a panic. The telemetry does not recover the
// panic; it only records the call on the way out.
var errPanic = wire.Errorf(wire.KindInternal, "panic")

// panicOutcome is the outcome of c when a middleware below panicked.
func panicOutcome(c *pipeline.Call) wire.Outcome { return wire.OutcomeOf(c.Proto, nil, errPanic) }

// queueGroup is the queue group an inbound call was delivered in.
func queueGroup(c *pipeline.Call) string {
	if s := c.Subset; s != "" {
		return c.Service + "." + s
	}
	return c.Service
}

// spanName follows the conventions: "{method} {target}" for HTTP, the full
// method for gRPC.
func spanName(c *pipeline.Call, dest string) string {
	if c.Proto == wire.ProtoGRPC {
		return strings.TrimPrefix(c.Op, "/")
	}
	return c.Op + " " + dest
}

// callAttrs are the semantic-convention attributes of a call's request.
func callAttrs(c *pipeline.Call, dest string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, attrCaller.String(c.Caller), attrCallee.String(dest), attrSubset.String(c.Subset),
		semconv.ServerAddress(dest))
	if c.Proto == wire.ProtoGRPC {
		attrs = append(attrs, semconv.RPCSystemNameGRPC, semconv.RPCMethod(strings.TrimPrefix(c.Op, "/")))
	} else {
		attrs = append(attrs, semconv.HTTPRequestMethodKey.String(c.Op))
		if c.Path != "" {
			attrs = append(attrs, semconv.URLPath(c.Path))
		}
	}
	return attrs
}

// endSpanAtEnd ends an attempt's span when its streamed reply ends.
func endSpanAtEnd(span trace.Span, proto wire.Proto, reply *pipeline.Reply) {
	reply.OnEnd(func(w wire.Outcome) { endSpan(span, proto, classify(w), w.Err) })
}

// endSpan records the outcome on span and ends it: the status code, the
// mesh error e, and the error status when the call failed.
func endSpan(span trace.Span, proto wire.Proto, o outcome, e *wire.Error) {
	if proto == wire.ProtoGRPC {
		span.SetAttributes(semconv.RPCResponseStatusCode(grpccodes.Code(o.code).String()))
	} else if e == nil {
		span.SetAttributes(semconv.HTTPResponseStatusCode(o.code))
	}
	if o.kind > 0 {
		span.SetAttributes(attrMeshError.String(kindLabel(o.kind)), semconv.ErrorTypeKey.String(kindLabel(o.kind)))
		span.SetStatus(codes.Error, e.Message)
	} else if o.err {
		span.SetAttributes(semconv.ErrorTypeKey.String(statusLabelOrCode(proto, o)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

func statusLabelOrCode(proto wire.Proto, o outcome) string {
	if proto == wire.ProtoGRPC {
		return grpccodes.Code(o.code).String()
	}
	return itoa(o.code)
}
