package agent

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/internal/discovery"
	"github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// Discovery: the agent answers $SRV.PING, $SRV.INFO and $SRV.STATS itself
// (package internal/discovery) instead of registering with micro.AddService,
// so what `nats micro` shows is the agent's own state: an endpoint per
// inbound subject, counted by the inbound pipeline, and the serving state
// read at each answer.

// Metadata keys of the agent's discovery answers.
const (
	// MetaServing is "true" while the agent takes calls (see
	// Agent.Readiness: for an agent with an inbound side, while its service
	// passes its health checks), else "false".
	MetaServing = "natsmesh.serving"
	// MetaKind is "agent" (the edge gateway says "bridge").
	MetaKind = "natsmesh.kind"
	// MetaSubset is the instance's subset, absent for none.
	MetaSubset = "natsmesh.subset"
	// MetaUpstream is the local service's URL, absent for an in-process
	// service.
	MetaUpstream = "natsmesh.upstream"
	// MetaInbound is "none" for an agent that only makes calls.
	MetaInbound = "natsmesh.inbound"
)

// newEndpoints returns the discovery endpoints of the agent's inbound
// subjects: the service's (any instance) and, with a subset, the subset's.
// Their names are the queue groups with '.' as '-' (micro's names are
// [A-Za-z0-9_-]).
func (a *Agent) newEndpoints() []*discovery.Endpoint {
	if !a.in.enabled() {
		return nil
	}
	subjects, queues := wire.ServiceSubjects(a.cfg.Service, a.cfg.Subset)
	eps := make([]*discovery.Endpoint, len(subjects))
	for i, s := range subjects {
		eps[i] = &discovery.Endpoint{Name: strings.ReplaceAll(queues[i], ".", "-"), Subject: s, QueueGroup: queues[i]}
	}
	return eps
}

// countEndpoints is the agent's outermost inbound middleware: it counts
// each served call on the endpoint it came in on, for $SRV.STATS.
func (a *Agent) countEndpoints(next pipeline.Handler) pipeline.Handler {
	return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		start := time.Now()
		reply, err := next.ServeCall(ctx, c)
		e := a.endpoints[0]
		if c.Subset != "" && len(a.endpoints) > 1 {
			e = a.endpoints[1]
		}
		if err == nil && reply.Streamed() {
			recordAtEnd(e, start, reply)
			return reply, nil
		}
		e.Record(time.Since(start), telemetry.Failed(pipeline.OutcomeOf(c.Proto, reply, err)))
		return reply, err
	})
}

// recordAtEnd counts a call answered by a stream when the stream ends.
func recordAtEnd(e *discovery.Endpoint, start time.Time, reply *pipeline.Reply) {
	reply.OnEnd(func(o wire.Outcome) { e.Record(time.Since(start), telemetry.Failed(o)) })
}

// startDiscovery starts answering discovery, the status subject of
// passive health (internal/passive), and its callers' census
// (internal/census).
func (a *Agent) startDiscovery() error {
	id := a.instance
	counted := &census.Responder{Service: a.cfg.Service, Logger: a.log, Answer: func() census.Answer {
		return census.Answer{ID: id, Subset: a.cfg.Subset, Addressable: a.in.hold.Addressable()}
	}}
	r, err := discovery.Start(a.nc, discovery.Config{
		Name: a.cfg.Service,
		ID:   id,
		Control: map[string]nats.MsgHandler{
			passive.StatusSubject(a.cfg.Service): a.in.ej.Answer(id),
			census.Subject(a.cfg.Service, "*"):   counted.Serve,
		},
		Version:     a.version(),
		Description: "natsmesh agent",
		Metadata:    a.metadata,
		Endpoints:   a.endpoints,
		Extra:       func() any { return a.Stats() },
		Logger:      a.log,
	})
	if err != nil {
		return err
	}
	a.disc = r
	if a.in.enabled() {
		a.in.ej.Announce(id)
	}
	return nil
}

func (a *Agent) metadata() map[string]string {
	md := map[string]string{MetaKind: "agent", MetaServing: "false"}
	if a.Readiness() == nil {
		md[MetaServing] = "true"
	}
	if a.cfg.Subset != "" {
		md[MetaSubset] = a.cfg.Subset
	}
	if !a.in.enabled() {
		md[MetaInbound] = "none"
	}
	if a.upstream != nil {
		md[MetaUpstream] = a.upstream.Redacted()
	}
	return md
}

// ID is the instance ID the agent answers discovery as ($SRV.*.NAME.ID),
// "" before Start.
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.disc == nil {
		return ""
	}
	return a.disc.ID()
}

// Stats is the agent's snapshot (see telemetry.Snapshot): who it is,
// whether it serves, and the cumulative counts of its calls by edge, which
// its $SRV.STATS answer carries under "natsmesh". Without Telemetry the
// edges are empty.
func (a *Agent) Stats() telemetry.Snapshot {
	s := a.cfg.Telemetry.Snapshot()
	s.Service, s.Subset, s.Kind = a.cfg.Service, a.cfg.Subset, "agent"
	s.Serving = a.Readiness() == nil
	a.mu.Lock()
	if a.disc != nil {
		s.ID, s.Started = a.disc.ID(), a.disc.Started()
	}
	a.mu.Unlock()
	return s
}
