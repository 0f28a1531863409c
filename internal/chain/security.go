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
// everything and the broker alone decides, unless FailClosed: then it
// refuses every call with no-mesh-file until a file arrives. Calls to
// NATS-native subjects are not the allow lists' business and pass (once
// there is a file, when FailClosed).
func outboundAuthz(o Options) []pipeline.OutboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	src, closed := o.Policies, o.FailClosed
	return []pipeline.OutboundMiddleware{func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			f, _ := src.Current()
			if f == nil && closed {
				return nil, noMeshFile()
			}
			if c.Subject == "" {
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
// With FailClosed, a call that arrives while there is no mesh file yet is
// refused with no-mesh-file.
func inboundAuthz(o Options) []pipeline.InboundMiddleware {
	if o.Policies == nil {
		return nil
	}
	src, closed := o.Policies, o.FailClosed
	return []pipeline.InboundMiddleware{func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if c.Proto == wire.ProtoHTTP && (len(c.Header[wire.HeaderPath]) > 1 || len(c.Header[wire.HeaderMethod]) > 1) {
				return nil, wire.Errorf(wire.KindBadRequest, "repeated %s or %s header", wire.HeaderMethod, wire.HeaderPath)
			}
			f, _ := src.Current()
			if f == nil && closed {
				return nil, noMeshFile()
			}
			if err := authz.Check(f, request(c)); err != nil {
				return nil, err
			}
			return next.ServeCall(ctx, c)
		})
	}}
}

// noMeshFile is the answer of a component that fails closed and holds no
// mesh file yet.
func noMeshFile() error {
	return wire.Errorf(wire.KindNoMeshFile, "no mesh file yet: this component authenticates to its broker and serves no call without one (natsmesh policy apply)")
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
