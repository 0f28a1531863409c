// Package agenttest starts agents for tests: the one helper every package
// outside agent uses to run an agent on a test broker (see meshtest).
//
// It is its own package, not part of meshtest, because it imports agent:
// meshtest is imported by the tests of agent's own package and of the
// packages agent imports (pipeline, internal/discovery, ...), and Go
// forbids the cycle. For the same reason agent's internal tests keep their
// own startAgent.
//
// Only tests import it (internal/meshtest's TestTestHelpersStayInTests
// checks that).
package agenttest

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// Start starts an agent of cfg.Service (see StartConn) on a connection of
// its own to b, with the service's inbox prefix, closed in t.Cleanup after
// the agent has shut down.
func Start(t testing.TB, b *broker.Broker, cfg agent.Config, before ...func(*agent.Agent) error) *agent.Agent {
	t.Helper()
	return StartConn(t, meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix(cfg.Service))), cfg, before...)
}

// StartConn creates an agent on nc, lets each before prepare it (in-process
// handlers: a.Handle, a.GRPCServer), starts it and waits until it is ready.
// A nil cfg.Logger discards. The agent shuts down in t.Cleanup (a shutdown
// error fails the test); nc is the caller's. Any other failure, a before's
// error included, ends the test.
func StartConn(t testing.TB, nc *nats.Conn, cfg agent.Config, before ...func(*agent.Agent) error) *agent.Agent {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := agent.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Shut down whatever happens next: a before or Start that fails
	// halfway may have subscribed already (a leak goleak would blame on a
	// later test). Its error counts once the agent started.
	started := false
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil && started {
			t.Errorf("agenttest: shutdown %s: %v", cfg.Service, err)
		}
	})
	for _, f := range before {
		if err := f(a); err != nil {
			t.Fatalf("agenttest: prepare %s: %v", cfg.Service, err)
		}
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	started = true
	if err := a.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// Handle is a before for Start that serves h in process (a.Handle).
func Handle(h http.Handler) func(*agent.Agent) error {
	return func(a *agent.Agent) error { return a.Handle(h) }
}

// StartSidecar creates and starts a sidecar of cfg; it shuts down in
// t.Cleanup, without a deadline. Any failure ends the test.
func StartSidecar(t testing.TB, cfg agent.SidecarConfig) *agent.Sidecar {
	t.Helper()
	s, err := agent.NewSidecar(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}
