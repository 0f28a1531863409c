package traffic

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// MaxMirrorsInFlight bounds the mirror copies one pipeline has in flight;
// a copy beyond it is dropped, so a slow mirror target never holds up
// memory or goroutines without bound.
const MaxMirrorsInFlight = 128

// mirrorTimeout bounds a mirror copy sent for a call without a deadline
// (the outbound pipeline always sets one; this is a backstop).
const mirrorTimeout = 30 * time.Second

// Routing returns the outbound middleware that routes each call to a
// mesh service by the current mesh file:
//
//  1. the first route of the destination service that matches the call
//     (path prefix, methods, headers, gRPC method) names the call's route,
//     carried in the context (pipeline.WithRoute) for the policies below;
//  2. unless the call already names a subset, the merged policy's split
//     picks one by weight, per call, and the call goes on as a clone with
//     that Subset; a subset that serves nothing (no-responders, its
//     breaker open, overloaded: nothing ran) gives way to the split's
//     others, heaviest first, each tried once with the body read again;
//  3. the merged policy's mirror copies its share of the calls (a clone
//     to the mirror's service and subset), sent through the rest of the
//     pipeline in the background with the call's remaining deadline; its
//     answer is discarded, and at most MaxMirrorsInFlight are in flight
//     (more are dropped). A mirror never delays or fails the call. A copy
//     reads the call's body again (pipeline.Call.Replay): a call whose
//     body is a stream that cannot be replayed is not mirrored.
//
// Calls to a NATS subject, and every call while there is no file, pass
// through unchanged.
func Routing(cfg Config) pipeline.OutboundMiddleware {
	rt := &router{cfg: cfg, sem: make(chan struct{}, MaxMirrorsInFlight)}
	return func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			return rt.send(ctx, c, next)
		})
	}
}

type router struct {
	cfg     Config
	res     resolver
	sem     chan struct{}
	dropped atomic.Uint64
}

func (rt *router) send(ctx context.Context, c *pipeline.Call, next pipeline.Sender) (*pipeline.Reply, error) {
	f := rt.cfg.current()
	if f == nil || c.Subject != "" {
		return next.Send(ctx, c)
	}
	route := ""
	if r, ok := f.MatchRoute(c.Service, matchInput(c)); ok {
		route = r.Name
		ctx = pipeline.WithRoute(ctx, route)
	}
	p := rt.res.resolve(f, c.Service, route)
	if m := p.mirror; m != nil && chance(m.fraction) {
		rt.mirror(ctx, c, m, next)
	}
	if len(p.split) > 0 && c.Subset == "" {
		if s := p.pick(); s != "" {
			return rt.split(ctx, c, p, s, next)
		}
	}
	return next.Send(ctx, c)
}

// unserved reports whether err says the subset served nothing, and ran
// nothing: no instance serves it, its breaker is open, its instances are
// at their limit or refuse their service's connections.
func unserved(err error) bool {
	return errors.Is(err, wire.ErrNoResponders) || errors.Is(err, wire.ErrCircuitOpen) ||
		errors.Is(err, wire.ErrOverloaded) || errors.Is(err, wire.ErrUpstreamRefused)
}

// split sends c to subset s, the split's pick. A subset that serves
// nothing (no instance, its breaker open, its instances at their limit:
// nothing ran, whatever the call) gives way to
// the split's other subsets, by weight, each tried once: a rolling
// restart of the only instance of one subset fails none of the calls
// the split sends it. A call whose body cannot be read again is sent to
// its pick only.
func (rt *router) split(ctx context.Context, c *pipeline.Call, p *resolved, s string, next pipeline.Sender) (*pipeline.Reply, error) {
	d := c.Clone()
	d.Subset = s
	reply, err := next.Send(ctx, d)
	if err == nil || !unserved(err) || !c.Body.Replayable() || len(p.split) < 2 {
		return reply, err
	}
	tried := map[string]bool{s: true}
	for _, w := range p.byWeight() {
		if tried[w] || ctx.Err() != nil {
			continue
		}
		tried[w] = true
		e, rerr := c.Replay()
		if rerr != nil {
			return reply, err
		}
		e.Subset = w
		r2, err2 := next.Send(ctx, e)
		// The replay is this policy's: it closes its body once its
		// call has ended.
		e.CloseBody(r2, err2)
		if err2 == nil || !unserved(err2) {
			return r2, err2
		}
	}
	return reply, err
}

// mirror sends a copy of c to m in the background, or drops it when
// MaxMirrorsInFlight copies are in flight already.
func (rt *router) mirror(ctx context.Context, c *pipeline.Call, m *mirrorTo, next pipeline.Sender) {
	if !c.Body.Replayable() {
		return
	}
	select {
	case rt.sem <- struct{}{}:
	default:
		if n := rt.dropped.Add(1); n&(n-1) == 0 { // log at powers of two
			rt.cfg.logger().Warn("traffic: mirror copies dropped: too many in flight",
				"service", c.Service, "mirror", m.service, "dropped", n, "limit", MaxMirrorsInFlight)
		}
		return
	}
	d, err := c.Replay()
	if err != nil {
		<-rt.sem
		rt.cfg.logger().Warn("traffic: mirror copy dropped: the call's body could not be replayed",
			"service", c.Service, "mirror", m.service, "err", err)
		return
	}
	d.Service, d.Subset = m.service, m.subset
	// The copy outlives the call: not its cancellation, but its deadline.
	// It starts from a fresh context, not the call's: the call's values
	// (its telemetry state, its route) belong to the primary, and a copy
	// writing into them would count as the call's attempts. Only the route
	// is carried over, when the copy goes to the same service.
	mctx := pipeline.WithMirror(context.Background())
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok {
		mctx, cancel = context.WithDeadline(mctx, dl)
	} else {
		mctx, cancel = context.WithTimeout(mctx, mirrorTimeout)
	}
	if route, ok := pipeline.RouteFrom(ctx); ok && m.service == c.Service {
		mctx = pipeline.WithRoute(mctx, route)
	}
	go func() {
		defer func() { <-rt.sem }()
		defer cancel()
		// A mirror's answer is discarded: a streamed one is closed.
		reply, err := next.Send(mctx, d)
		if err == nil && reply.Streamed() {
			reply.Body.Stream.Close()
		}
		d.CloseBody(reply, err)
	}()
}
