package logevery

import (
	"sync"
	"time"
)

// DefaultInterval is a Limiter's interval when it sets none.
const DefaultInterval = time.Second

// Limiter allows one event per Interval. The zero value works (one per
// DefaultInterval); it is safe for concurrent use.
type Limiter struct {
	// Interval is the least time between two events allowed. Default
	// DefaultInterval.
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether this event is to be logged (the first, and then
// one each Interval) and, when it is, how many events were not since the
// last one that was.
func (l *Limiter) Allow() (suppressed int, ok bool) {
	interval := l.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < interval {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}
