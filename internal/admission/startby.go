package admission

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/logevery"
	"github.com/natsmesh/natsmesh/wire"
)

// StartBy reads a caller's absolute deadline (wire.HeaderStartBy) with
// the clock skew tolerated: a call past it is not started, and a call's
// local deadline is no later than it. Safe for concurrent use once set.
type StartBy struct {
	// Skew is how far this host's clock may be ahead of a caller's;
	// negative ignores callers' deadlines as absolute times.
	Skew time.Duration
	// Log receives the calls not started, at most once a second; nil
	// logs nothing.
	Log *slog.Logger

	limiter logevery.Limiter
}

// Late is how long ago the caller's deadline in h passed; 0 when it has
// not, or h has none, or Skew ignores it. A malformed one is 0 here: the
// call is refused when it is parsed (Bound).
func (s *StartBy) Late(h nats.Header) time.Duration {
	if s.Skew < 0 || len(h[wire.HeaderStartBy]) == 0 {
		return 0
	}
	sb, ok, err := wire.StartBy(h)
	if err != nil || !ok {
		return 0
	}
	return max(0, time.Since(sb.Add(s.Skew)))
}

// Bound bounds timeout, a call's deadline counted from now, by the
// caller's deadline in h: time the message spent queued counts.
func (s *StartBy) Bound(h nats.Header, timeout time.Duration) (time.Duration, error) {
	if s.Skew < 0 || len(h[wire.HeaderStartBy]) == 0 {
		return timeout, nil
	}
	sb, _, err := wire.StartBy(h)
	if err != nil {
		return 0, err
	}
	return max(min(timeout, time.Until(sb.Add(s.Skew))), time.Millisecond), nil
}

// NotStarted logs (at most once a second) and returns the error of a
// call on subject not started because its caller's deadline passed late
// ago.
func (s *StartBy) NotStarted(subject string, late time.Duration) *wire.Error {
	if suppressed, ok := s.limiter.Allow(); ok && s.Log != nil {
		s.Log.Warn("call not started: its caller's deadline passed before it could start", "subject", subject,
			"late", late.Round(time.Millisecond), "more since the last", suppressed)
	}
	return &wire.Error{Kind: wire.KindTimeout,
		Message: fmt.Sprintf("not started: the caller's deadline passed %v before the call reached its service", late.Round(time.Millisecond))}
}
