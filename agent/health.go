package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natsmesh/natsmesh/internal/upstream"
)

// HealthConfig configures the agent's checks of its local service. The zero
// value checks an HTTP upstream by TCP connect, a gRPC upstream with the gRPC
// health protocol (or, if it has none, by its answering at all: see
// GRPCHealthAuto), every 2s.
type HealthConfig struct {
	// Path, when set, is probed with GET on an HTTP upstream; a 2xx or 3xx
	// answer is healthy. Empty: a TCP connect to the upstream is the check
	// (and a TLS handshake, to an https:// upstream).
	Path string
	// GRPCService is the service name asked of a gRPC upstream's
	// grpc.health.v1.Health/Check; "" asks for the server as a whole.
	GRPCService string
	// GRPC says how a gRPC (h2c) upstream is checked. Default
	// GRPCHealthAuto.
	GRPC GRPCHealthMode
	// Interval between checks. Zero means 2s.
	Interval time.Duration
	// Timeout of one check. Zero means 1s, capped at Interval.
	Timeout time.Duration
	// FailThreshold is how many consecutive failures withdraw the instance.
	// Zero means 3.
	FailThreshold int
	// PassThreshold is how many consecutive successes restore a withdrawn
	// instance. Zero means 2. The first time, one success is enough.
	PassThreshold int
	// Check replaces the built-in check (for in-process services, whose
	// health only the application knows). A nil error is healthy.
	Check func(ctx context.Context) error
	// Disabled turns health checking off: the instance serves from Start on.
	Disabled bool
}

// GRPCHealthMode is how a gRPC upstream is checked.
type GRPCHealthMode string

const (
	// GRPCHealthAuto asks the gRPC health protocol, and when the server
	// does not implement it (Unimplemented) checks only that the server
	// answers, which the agent logs once.
	GRPCHealthAuto GRPCHealthMode = "auto"
	// GRPCHealthProtocol asks the gRPC health protocol and requires
	// SERVING: a server without it is unhealthy.
	GRPCHealthProtocol GRPCHealthMode = "health"
	// GRPCHealthConnect checks that the upstream accepts a TCP connection.
	GRPCHealthConnect GRPCHealthMode = "connect"
)

func (h *HealthConfig) validate() error {
	switch h.GRPC {
	case "":
		h.GRPC = GRPCHealthAuto
	case GRPCHealthAuto, GRPCHealthProtocol, GRPCHealthConnect:
	default:
		return fmt.Errorf("%w: gRPC health mode %q: want auto, health or connect", ErrConfig, h.GRPC)
	}
	if h.Interval < 0 || h.Timeout < 0 || h.FailThreshold < 0 || h.PassThreshold < 0 {
		return fmt.Errorf("%w: negative health check setting", ErrConfig)
	}
	if h.Path != "" && h.Path[0] != '/' {
		return fmt.Errorf("%w: health path %q must start with /", ErrConfig, h.Path)
	}
	if h.Interval == 0 {
		h.Interval = 2 * time.Second
	}
	if h.Timeout == 0 {
		h.Timeout = time.Second
	}
	if h.Timeout > h.Interval {
		h.Timeout = h.Interval
	}
	if h.FailThreshold == 0 {
		h.FailThreshold = 3
	}
	if h.PassThreshold == 0 {
		h.PassThreshold = 2
	}
	return nil
}

// checker returns the health check for the agent's local service, or nil when
// there is nothing to check.
func (a *Agent) checker() func(context.Context) error {
	h := a.cfg.Health
	switch {
	case h.Disabled:
		return nil
	case h.Check != nil:
		return h.Check
	case a.upstream == nil:
		return nil
	case upstream.GRPC(a.upstream) && h.GRPC != GRPCHealthConnect:
		return a.grpcHealth
	case !upstream.GRPC(a.upstream) && h.Path != "":
		return a.httpHealth
	}
	return a.connectHealth
}

// connectHealth checks that the upstream accepts a TCP connection (and
// completes a TLS handshake the agent's settings accept: upstream.Connect).
func (a *Agent) connectHealth(ctx context.Context) error {
	return upstream.Connect(ctx, a.upstream, a.tlsConfig())
}

func (a *Agent) httpHealth(ctx context.Context) error {
	return upstream.Get(ctx, a.in.httpTransport, a.upstream, a.cfg.Health.Path)
}

func (a *Agent) grpcHealth(ctx context.Context) error {
	cc, err := a.in.grpcConn()
	if err != nil {
		return err
	}
	err = upstream.GRPCHealth(ctx, cc, a.cfg.Health.GRPCService)
	if !errors.Is(err, upstream.ErrNoHealthProtocol) {
		return err
	}
	if a.cfg.Health.GRPC == GRPCHealthProtocol {
		return fmt.Errorf("%w (health checks set to %q)", err, GRPCHealthProtocol)
	}
	// It answered, so it is up: a connection check, from now on.
	if a.in.noGRPCHealth.CompareAndSwap(false, true) {
		a.log.Warn("the gRPC upstream does not implement grpc.health.v1: health checks only see that it answers (choose with HealthConfig.GRPC / --health-grpc)")
	}
	return nil
}
