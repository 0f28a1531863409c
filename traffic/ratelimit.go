package traffic

import (
	"context"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/ratelimiter"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

// RateLimit returns the inbound middleware that limits each caller of the
// service to its inbound rate limit (policies.RateLimit): per_caller calls
// every per, spread evenly (one every per/per_caller), with up to burst
// calls more at once. Each caller, as the subject names it
// (pipeline.CallerFrom), has a failsafe-go smooth rate limiter of its
// own, so one caller over its limit leaves the others unaffected. A call
// over the limit is answered at once with a rate-limited mesh error (HTTP
// 429, gRPC RESOURCE_EXHAUSTED) whose Retry-After is the time until the
// caller's next call is allowed. A changed limit starts each caller's
// limiter afresh.
func RateLimit(cfg Config) pipeline.InboundMiddleware {
	l := &limiters{}
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			f := cfg.current()
			if f == nil {
				return next.ServeCall(ctx, c)
			}
			s := f.Services[cfg.Service]
			if s == nil || s.Inbound == nil || s.Inbound.RateLimit == nil || s.Inbound.RateLimit.PerCaller <= 0 {
				return next.ServeCall(ctx, c)
			}
			caller, _ := pipeline.CallerFrom(ctx)
			if wait, ok := l.get(caller, *s.Inbound.RateLimit).admit(); !ok {
				return nil, &wire.Error{
					Kind:       wire.KindRateLimited,
					Message:    caller + " is over its rate limit for " + cfg.Service,
					RetryAfter: wait,
				}
			}
			return next.ServeCall(ctx, c)
		})
	}
}

// limiters are the rate limiters by caller. Callers are service names the
// broker vouches for, so the map is as small as the mesh.
type limiters struct {
	m sync.Map // caller -> *callerLimit
}

type callerLimit struct {
	rl       policies.RateLimit
	interval time.Duration // between calls at the steady rate
	maxWait  time.Duration // how far ahead the burst may reserve
	limiter  ratelimiter.RateLimiter[any]
}

func (l *limiters) get(caller string, rl policies.RateLimit) *callerLimit {
	if v, ok := l.m.Load(caller); ok && v.(*callerLimit).rl == rl {
		return v.(*callerLimit)
	}
	per := rl.Per.D()
	if per <= 0 {
		per = time.Second
	}
	interval := max(per/time.Duration(rl.PerCaller), time.Nanosecond)
	cl := &callerLimit{
		rl:       rl,
		interval: interval,
		maxWait:  interval * time.Duration(max(rl.Burst, 0)),
		limiter:  ratelimiter.NewSmoothBuilderWithMaxRate[any](interval).Build(),
	}
	l.m.Store(caller, cl)
	return cl
}

// admit takes a permit for a call now, or returns false and how long
// until one is free.
//
// A smooth limiter hands out one permit per interval and may reserve
// permits ahead; reserving at most burst intervals ahead and not waiting
// for them lets burst calls beyond the rate through at once, as a token
// bucket of burst+1 does.
func (cl *callerLimit) admit() (time.Duration, bool) {
	if cl.limiter.TryReservePermit(cl.maxWait) >= 0 {
		return 0, true
	}
	return cl.interval, false
}
