package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/internal/logevery"
	"github.com/natsmesh/natsmesh/wire"
)

// Config is what a component answers discovery with.
type Config struct {
	// Name is the service name; Version its version (semantic, as micro
	// requires; default "0.0.0"); Description one line about it.
	Name        string
	Version     string
	Description string
	// ID is the instance ID. Default a new NUID, as micro makes.
	ID string
	// Metadata, when set, is called for each answer: the metadata shown by
	// PING, INFO and STATS, current at the time of asking.
	Metadata func() map[string]string
	// Endpoints are the component's inbound subjects. None for a component
	// that only makes calls.
	Endpoints []*Endpoint
	// Extra, when set, is called for each STATS answer; its result is the
	// answer's "natsmesh" field, beside micro's own.
	Extra func() any
	// Control are further subjects the responder answers, by subject, for
	// the component's own use (the agent's status subject); they are not
	// endpoints and discovery does not list them.
	Control map[string]nats.MsgHandler
	// Logger receives failures to answer. Default slog.Default().
	Logger *slog.Logger
}

// Endpoint is one inbound subject and the counts of the calls it took.
// Record is safe for concurrent use.
type Endpoint struct {
	Name       string
	Subject    string
	QueueGroup string
	Metadata   map[string]string

	requests   atomic.Int64
	errors     atomic.Int64
	processing atomic.Int64 // nanoseconds
	lastError  atomic.Pointer[string]
}

// Record counts one call that took d; errMsg, when not empty, says how it
// failed (micro's last_error).
func (e *Endpoint) Record(d time.Duration, errMsg string) {
	e.requests.Add(1)
	e.processing.Add(int64(d))
	if errMsg != "" {
		e.errors.Add(1)
		// A copy of its own: storing &errMsg would move the parameter to
		// the heap on every call, failed or not.
		msg := errMsg
		e.lastError.Store(&msg)
	}
}

// Stats returns the endpoint's counts in micro's form.
func (e *Endpoint) Stats() *micro.EndpointStats {
	s := &micro.EndpointStats{Name: e.Name, Subject: e.Subject, QueueGroup: e.QueueGroup}
	s.NumRequests = int(e.requests.Load())
	s.NumErrors = int(e.errors.Load())
	s.ProcessingTime = time.Duration(e.processing.Load())
	if s.NumRequests > 0 {
		s.AverageProcessingTime = s.ProcessingTime / time.Duration(s.NumRequests)
	}
	if p := e.lastError.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Responder answers discovery for one component until Stop.
type Responder struct {
	nc      *nats.Conn
	cfg     Config
	started time.Time

	mu   sync.Mutex
	subs []*nats.Subscription

	refused refusals
}

// Stats is the STATS answer: micro's, and the component's own snapshot
// under "natsmesh".
type Stats struct {
	micro.Stats
	Natsmesh any `json:"natsmesh,omitempty"`
}

// Start subscribes the discovery subjects on nc and answers them; when it
// returns, the broker knows the subscriptions (a flush).
func Start(nc *nats.Conn, cfg Config) (*Responder, error) {
	if cfg.Name == "" {
		return nil, errors.New("discovery: no service name")
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.0"
	}
	if cfg.ID == "" {
		cfg.ID = nuid.Next()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Responder{nc: nc, cfg: cfg, started: time.Now().UTC()}
	handlers := map[micro.Verb]nats.MsgHandler{
		micro.PingVerb:  r.answer(func() any { return micro.Ping{ServiceIdentity: r.identity(), Type: micro.PingResponseType} }),
		micro.InfoVerb:  r.answer(func() any { return r.info() }),
		micro.StatsVerb: r.answer(func() any { return r.stats() }),
	}
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		for _, subj := range []string{
			mustSubject(verb, "", ""), mustSubject(verb, cfg.Name, ""), mustSubject(verb, cfg.Name, cfg.ID),
		} {
			sub, err := nc.Subscribe(subj, handlers[verb])
			if err != nil {
				r.Stop()
				return nil, fmt.Errorf("discovery: subscribing %s: %w", subj, err)
			}
			r.subs = append(r.subs, sub)
		}
	}
	for subj, h := range cfg.Control {
		sub, err := nc.Subscribe(subj, h)
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("discovery: subscribing %s: %w", subj, err)
		}
		r.subs = append(r.subs, sub)
	}
	// Discoverable when Start returns: the broker has the interest.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		cfg.Logger.Warn("discovery: flushing the subscriptions", "err", err)
	}
	return r, nil
}

func mustSubject(verb micro.Verb, name, id string) string {
	s, err := micro.ControlSubject(verb, name, id)
	if err != nil {
		panic(err) // the verbs are micro's own and name is set with id
	}
	return s
}

// ID is the instance ID the responder answers as.
func (r *Responder) ID() string { return r.cfg.ID }

// Started is when the responder started.
func (r *Responder) Started() time.Time { return r.started }

// Stop stops answering. It is safe to call more than once.
func (r *Responder) Stop() error {
	r.mu.Lock()
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Responder) answer(body func() any) nats.MsgHandler {
	return func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		if !Answerable(m.Reply) {
			r.refused.refused(r.cfg.Logger, m.Subject, m.Reply)
			return
		}
		b, err := json.Marshal(body())
		if err != nil {
			r.cfg.Logger.Error("discovery: encoding an answer", "subject", m.Subject, "err", err)
			return
		}
		if err := m.Respond(b); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			r.cfg.Logger.Warn("discovery: answering", "subject", m.Subject, "err", err)
		}
	}
}

func (r *Responder) identity() micro.ServiceIdentity {
	var md map[string]string
	if r.cfg.Metadata != nil {
		md = r.cfg.Metadata()
	}
	if md == nil {
		md = map[string]string{}
	}
	return micro.ServiceIdentity{Name: r.cfg.Name, ID: r.cfg.ID, Version: r.cfg.Version, Metadata: md}
}

func (r *Responder) info() micro.Info {
	info := micro.Info{ServiceIdentity: r.identity(), Type: micro.InfoResponseType, Description: r.cfg.Description,
		Endpoints: make([]micro.EndpointInfo, 0, len(r.cfg.Endpoints))}
	for _, e := range r.cfg.Endpoints {
		info.Endpoints = append(info.Endpoints, micro.EndpointInfo{Name: e.Name, Subject: e.Subject, QueueGroup: e.QueueGroup, Metadata: e.Metadata})
	}
	return info
}

func (r *Responder) stats() Stats {
	s := Stats{Stats: micro.Stats{ServiceIdentity: r.identity(), Type: micro.StatsResponseType, Started: r.started,
		Endpoints: make([]*micro.EndpointStats, 0, len(r.cfg.Endpoints))}}
	for _, e := range r.cfg.Endpoints {
		s.Endpoints = append(s.Endpoints, e.Stats())
	}
	if r.cfg.Extra != nil {
		s.Natsmesh = r.cfg.Extra()
	}
	return s
}

// Answerable reports whether a discovery request's reply subject may be
// answered. Any inbox may ask (the nats CLI on an open broker uses
// "_INBOX."; on a secured mesh the broker lets services answer only in
// the pair inboxes _INBOX_mesh.<admin|bridge>.SRV.>), but never a subject
// a discovery answer could do harm on: a mesh call subject ("mesh.",
// "mesh-inst."),
// NATS's reserved namespaces ("$JS.", "$KV.", "$SYS.", "$SRV." and every
// other "$" subject), a service import's reply ("_R_."), or a subject
// with a wildcard, whitespace or an empty token; and a mesh inbox only
// as a discovery pair inbox (_INBOX_mesh.<name>.SRV.…), never the pair
// inbox of calls or streams. Defence in depth: on a secured mesh the
// broker refuses most of these anyway.
//
// The responder's Control handlers check their own replies.
func Answerable(reply string) bool {
	if !wire.LiteralSubject(reply) {
		return false
	}
	if strings.HasPrefix(reply, "$") || wire.IsCallSubject(reply) || strings.HasPrefix(reply, "_R_.") {
		return false
	}
	// A mesh inbox only as a discovery pair inbox (_INBOX_mesh.<name>.SRV.…):
	// never a pair inbox of calls or streams, where an answer would land
	// among the replies its owner waits for.
	if rest, ok := strings.CutPrefix(reply, wire.InboxPrefix("")); ok {
		_, rest, _ = strings.Cut(rest, ".")
		peer, _, _ := strings.Cut(rest, ".")
		return peer == wire.PeerSRV
	}
	return true
}

// refusals logs the requests refused for their reply subject at most once
// a second, with the number refused since the last line.
type refusals struct{ logevery.Limiter }

func (r *refusals) refused(log *slog.Logger, subject, reply string) {
	if n, ok := r.Allow(); ok {
		log.Warn("discovery: refused a request whose reply subject is a mesh, system or JetStream subject (nothing published)",
			"subject", subject, "reply", reply, "refused_since_last_log", n)
	}
}
