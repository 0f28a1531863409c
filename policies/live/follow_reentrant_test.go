package live

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/policies"
)

// An OnChange may close another follower of the same source, or start
// one (an agent started or stopped in reaction to a policy change): set
// calls the followers without holding the leader's mu, and a follower
// closed meanwhile is not called. (set used to hold mu through every
// OnChange, and Follow and a follower's Close take it: a deadlock.)
func TestFollowOnChangeClosesOrFollows(t *testing.T) {
	for name, act := range map[string]func(s, other *Source, closed *atomic.Bool){
		"close sibling": func(s, other *Source, closed *atomic.Bool) { other.Close(); closed.Store(true) },
		"follow":        func(s, other *Source, _ *atomic.Bool) { s.Follow(SourceConfig{}).Close() },
	} {
		t.Run(name, func(t *testing.T) {
			s := newSource(SourceConfig{})
			close(s.done)
			var closed, calledClosed atomic.Bool
			other := s.Follow(SourceConfig{OnChange: func(*policies.File, uint64) {
				if closed.Load() {
					calledClosed.Store(true)
				}
			}})
			s.Follow(SourceConfig{OnChange: func(*policies.File, uint64) { act(s, other, &closed) }})
			done := make(chan struct{})
			go func() {
				s.apply(&policies.File{Version: 1}, 1, [32]byte{1})
				s.apply(&policies.File{Version: 1}, 2, [32]byte{2})
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("the leader's set never returned: deadlock on Source.mu")
			}
			if calledClosed.Load() {
				t.Error("a closed follower's OnChange was called")
			}
		})
	}
}
