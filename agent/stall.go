package agent

import (
	"context"
	"sync"

	"google.golang.org/grpc"

	"github.com/natsmesh/natsmesh/internal/stallwatch"
	"github.com/natsmesh/natsmesh/internal/upstream"
	"github.com/natsmesh/natsmesh/pipeline"
)

// stallWatch is the inbound side's stall watch (package
// internal/stallwatch: it tells a frozen local service from a slow one by
// its calls), set up from in at its first use: its probe asks the
// upstream whether it answers at all (upstream.Alive), and a stall runs
// the health loop at once.
type stallWatch struct {
	in   *inbound
	once sync.Once
	w    stallwatch.Watch
}

func (s *stallWatch) watch() *stallwatch.Watch {
	s.once.Do(func() {
		in := s.in
		s.w.Log = in.a.log
		s.w.OnStall = func() { in.onRefused(nil) } // the health loop, at once
		s.w.Alive = func(ctx context.Context) error {
			return upstream.Alive(ctx, in.a.upstream, in.httpTransport, func() (grpc.ClientConnInterface, error) { return in.grpcConn() })
		}
	})
	return &s.w
}

// stop stops the watch's timer, at shutdown.
func (s *stallWatch) stop() { s.watch().Stop() }

// wrap is h with the watch around every call to the local service.
func (s *stallWatch) wrap(h pipeline.Handler) pipeline.Handler { return s.watch().Wrap(h) }

// check is base, the health check, with the watch's probe while the
// service is suspect.
func (s *stallWatch) check(base func(context.Context) error) func(context.Context) error {
	return s.watch().Check(base)
}
