package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// stallAfter is how long a local service may answer none of the calls
// waiting on it before its agent asks whether it is alive at all.
const stallAfter = time.Second

// stallWatch tells a frozen local service (a stopped or hung process: its
// kernel still accepts connections, so a TCP connect passes) from a slow
// one (issue 21). Its evidence is the calls: when the service has
// answered none of its calls since one that came stallAfter ago,
// the health loop runs at once with a probe that asks the service itself
// to answer, anything, within the check's timeout ([inbound.alive]:
// OPTIONS * to an HTTP service, which a Go server answers without running
// a handler; the gRPC health check to a gRPC one, any status but a
// timeout or unavailable). A service that answers is slow, not frozen (a
// long poll, a long job): nothing happens. One that does not is
// withdrawn from its queue groups at once, the probe stays in its checks
// until it answers again, and meanwhile a call still delivered to the
// instance is not sent to it but refused as nothing ran
// (upstream-refused), so its caller sends it elsewhere instead of into a
// socket the service will read when it wakes, past its deadline.
type stallWatch struct {
	in *inbound

	// since is when the first call the service has not answered since
	// its last answer came (Unix ns; 0: none): an atomic, as every call
	// reads it and most write it.
	since atomic.Int64

	// suspect: the health checks probe the service itself until it
	// answers; frozen: the last probe went unanswered.
	suspect, frozen atomic.Bool
}

// wrap is h with the watch around every call to the local service.
func (w *stallWatch) wrap(h pipeline.Handler) pipeline.Handler {
	return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		if w.frozen.Load() {
			return nil, &wire.Error{Kind: wire.KindUpstreamRefused,
				Message: "not sent: the service answered none of its calls and no probe (it is stopped or hung)"}
		}
		w.start()
		reply, err := h.ServeCall(ctx, c)
		w.end(err == nil)
		return reply, err
	})
}

func (w *stallWatch) start() {
	now := time.Now().UnixNano()
	w.since.CompareAndSwap(0, now) // the first call since the last answer
	since := w.since.Load()
	stalled := since != 0 && time.Duration(now-since) > stallAfter
	if stalled && w.suspect.CompareAndSwap(false, true) {
		w.in.a.log.Warn("the service has answered none of its calls for a while: asking it whether it is alive", "after", stallAfter)
		w.in.onRefused(nil) // the health loop, at once
	}
}

// end ends a call: answered, the service gave its answer (whatever its
// status); otherwise it failed, timed out or was cancelled.
func (w *stallWatch) end(answered bool) {
	if answered {
		w.answered()
	}
}

// answered notes a sign of the service's life: an answer, or a probe's.
func (w *stallWatch) answered() {
	if w.since.Load() != 0 {
		w.since.Store(0)
	}
}

// check is base, the health check, with the probe while the service is
// suspect: a service that answers it is no longer suspect.
func (w *stallWatch) check(base func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := base(ctx); err != nil {
			return err
		}
		if !w.suspect.Load() {
			return nil
		}
		if err := w.in.alive(ctx); err != nil {
			if !w.frozen.Swap(true) {
				w.in.a.log.Warn("the service answers nothing: withdrawn until it does", "err", err)
			}
			return fmt.Errorf("the service answers nothing (stopped or hung): %w", err)
		}
		if w.frozen.Swap(false) {
			w.in.a.log.Info("the service answers again")
		}
		w.suspect.Store(false)
		w.answered()
		return nil
	}
}

// alive asks the local service to answer anything: an HTTP service
// OPTIONS * (RFC 9110's request of the server itself, which Go's server
// answers without a handler), a gRPC one the health check; any answer is
// life.
func (in *inbound) alive(ctx context.Context) error {
	u := in.a.upstream
	if u.Scheme == "h2c" || u.Scheme == "h2" {
		cc, err := in.grpcConn()
		if err != nil {
			return err
		}
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
		switch status.Code(err) {
		case codes.DeadlineExceeded, codes.Unavailable, codes.Canceled:
			return err
		}
		return nil
	}
	scheme := "http"
	if u.Scheme == "https" {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, scheme+"://"+u.Host, nil)
	if err != nil {
		return err
	}
	req.URL = &url.URL{Scheme: scheme, Host: u.Host, Opaque: "*"}
	req.Header.Set("User-Agent", "natsmesh-health")
	req.Close = true // a connection of its own, not left idle in the pool
	resp, err := in.httpTransport.RoundTrip(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("OPTIONS * unanswered within the check's timeout")
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return nil
}
