package admission

import (
	"sync/atomic"
	"time"

	"github.com/natsmesh/natsmesh/internal/adaptivelimit"
)

// Gate is the concurrency limit of one dispatch: a fixed bound of the
// calls in flight (streams included), and under it, when set, the
// adaptive limit, which only calls whose request is whole go under
// (an upload, a gRPC stream or an upgrade goes at its client's pace),
// each until its answer's head. Safe for concurrent use.
type Gate struct {
	sem      chan struct{}          // nil: no fixed bound
	adaptive *adaptivelimit.Limiter // nil: none
	refused  atomic.Uint64
}

// NewGate returns the gate of at most bound calls in flight (0 or less:
// no fixed bound), under which adaptive, when not nil, configures the
// adaptive limit.
func NewGate(bound int, adaptive *adaptivelimit.Config) (*Gate, error) {
	g := &Gate{}
	if bound > 0 {
		g.sem = make(chan struct{}, bound)
	}
	if adaptive != nil {
		l, err := adaptivelimit.New(*adaptive)
		if err != nil {
			return nil, err
		}
		g.adaptive = l
	}
	return g, nil
}

// Admit takes a place for a call (whole: its request is whole) under
// the fixed bound and, for a whole one, under the adaptive limit, or
// reports that there is none (ok false: nothing is held). A call the
// adaptive limit holds back while it has seen no queue at the service
// may wait for its place (wait: call [Gate.Wait] before it runs): a
// healthy service's burst waits a moment, where an overload is turned
// away.
func (g *Gate) Admit(whole bool) (wait, ok bool) {
	if g.sem != nil {
		select {
		case g.sem <- struct{}{}:
		default:
			return false, false
		}
	}
	if g.adaptive != nil && whole && !g.adaptive.TryAcquire() {
		if !g.adaptive.MayWait() {
			g.Release()
			return false, false
		}
		return true, true
	}
	return false, true
}

// Wait waits for the adaptive place of a call Admit said must wait;
// false: it got none (the call is refused; its fixed place is still
// held until Release).
func (g *Gate) Wait() bool { return g.adaptive.Wait() }

// HeadDone gives back a whole call's place under the adaptive limit, at
// its answer's head; with sample, the time since start is a sample of
// the local service's latency.
func (g *Gate) HeadDone(whole bool, start time.Time, sample bool) {
	if g.adaptive != nil && whole {
		g.adaptive.Release(start, sample)
	}
}

// Release gives back a call's place under the fixed bound, once it has
// ended.
func (g *Gate) Release() {
	if g.sem != nil {
		<-g.sem
	}
}

// Refuse counts a call refused at the limit.
func (g *Gate) Refuse() { g.refused.Add(1) }

// Refused counts the calls refused at the limit.
func (g *Gate) Refused() uint64 { return g.refused.Load() }

// Limit is the limit now: the adaptive limit's current value, or the
// fixed bound; 0 when there is none.
func (g *Gate) Limit() int {
	switch {
	case g.adaptive != nil:
		return g.adaptive.Limit()
	case g.sem != nil:
		return cap(g.sem)
	}
	return 0
}
