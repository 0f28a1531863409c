package chain

import (
	"context"

	"github.com/natsmesh/natsmesh/authz"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// outboundAuthz answers a call the mesh file forbids with forbidden at the
// caller, at once, instead of letting the broker refuse it (which the
// caller would otherwise see only as its timeout). It decides by the
// current mesh file on every call, so a change applies to the next call;
// with no Policies, or before the first file arrives, it allows
// everything and the broker alone decides. Calls to NATS-native subjects
// are not the allow lists' business and pass.
func outboundAuthz(o Options) []pipeline.OutboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	src := o.Policies
	return []pipeline.OutboundMiddleware{func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if c.Subject == "" {
				f, _ := src.Current()
				if err := authz.Check(f, request(c)); err != nil {
					return nil, err
				}
			}
			return next.Send(ctx, c)
		})
	}}
}

// inboundAuthz authorizes the caller named by the subject (the identity
// the broker vouches for, never a header) against the service's allow
// list, with path rules on the canonical path (see package authz). A call
// whose Mesh-Method or Mesh-Path header is repeated is refused as a bad
// request: the decision and the local service must read one request.
func inboundAuthz(o Options) []pipeline.InboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	src := o.Policies
	return []pipeline.InboundMiddleware{func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if c.Proto == wire.ProtoHTTP && (len(c.Header[wire.HeaderPath]) > 1 || len(c.Header[wire.HeaderMethod]) > 1) {
				return nil, wire.Errorf(wire.KindBadRequest, "repeated %s or %s header", wire.HeaderMethod, wire.HeaderPath)
			}
			f, _ := src.Current()
			if err := authz.Check(f, request(c)); err != nil {
				return nil, err
			}
			return next.ServeCall(ctx, c)
		})
	}}
}

func request(c *pipeline.Call) authz.Request {
	r := authz.Request{Caller: c.Caller, Service: c.Service, Proto: c.Proto, Op: c.Op}
	if c.Proto == wire.ProtoHTTP {
		r.Path = c.Path
		if r.Path == "" {
			r.Path = "/" // as the decoder reads a missing Mesh-Path
		}
	}
	return r
}
