package passive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/internal/logevery"
	"github.com/natsmesh/natsmesh/wire"
)

// StatusSubject is the discovery subject on which every instance of
// service answers with its [Status] (in the $SRV namespace of nats.go
// micro, which a service's NATS user may use for its own name).
func StatusSubject(service string) string { return "$SRV.STATUS." + service }

// StatusInbox is the prefix of the reply subjects of requests on
// StatusSubject(service): wire.PairInbox(service, service) + ".", which
// only service subscribes to and only service publishes to. An instance
// answers no other reply subject, so the status subject, which every
// client of service's user may publish to, makes it publish nowhere else
// (no deputy, even on an open broker).
func StatusInbox(service string) string { return wire.PairInbox(service, service) + "." }

// StatusRequest is the body of a request on StatusSubject: the asker's
// ID, and its place's time when it is leaving or out. An empty body is a
// request too. Its reply subject is in the service's pair inbox with
// itself, under StatusInbox(service) (a request without one is noted and
// not answered; one with any other is refused whole).
type StatusRequest struct {
	ID    string    `json:"id,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// Status is one instance's answer on StatusSubject.
type Status struct {
	// ID is the instance's discovery ID ($SRV.*.SERVICE.ID).
	ID string `json:"id"`
	// Subset is its subset, "" for none.
	Subset string `json:"subset,omitempty"`
	// Inbound is whether it serves calls at all.
	Inbound bool `json:"inbound"`
	// Serving is whether it is in its queue groups now.
	Serving bool `json:"serving"`
	// Ejected is whether passive health has withdrawn it.
	Ejected bool `json:"ejected,omitempty"`
	// Leaving is whether passive health has claimed a place for it to
	// leave and is counting its siblings (it still serves).
	Leaving bool `json:"leaving,omitempty"`
	// Since is the time of its place while it is Ejected or Leaving.
	Since time.Time `json:"since,omitzero"`
}

// Config is the instance a [Member] stands for, and its hold on its queue
// groups. Conn, Service, ID, Serving, Leave and Return are required.
//
// Inbound and Serving are called with the Member's lock held: they must
// not wait for anything that calls the Member, [Member.Out] excepted.
type Config struct {
	// Conn is the instance's NATS connection.
	Conn *nats.Conn
	// Service is the instance's service; Subset its subset, "" for none.
	Service string
	Subset  string
	// ID returns the instance's discovery ID, "" before it answers
	// discovery.
	ID func() string
	// Inbound reports whether the instance serves calls at all. Default
	// true.
	Inbound func() bool
	// Serving reports whether the instance is in its queue groups now.
	Serving func() bool
	// Leave takes the instance out of its queue groups; when it returns,
	// no new call is routed to it.
	Leave func()
	// Return is called when a withdrawal ends: it puts the instance back
	// in its queue groups unless something else (its health checks) holds
	// it out.
	Return func()
	// Ejected, when set, is told when passive health takes the instance
	// out (true) and when that ends (false), for telemetry.
	Ejected func(bool)
	// Logger receives failures to announce the instance. Default
	// slog.Default().
	Logger *slog.Logger
}

// Member is one instance's claim and withdrawal by passive health, and its
// view of its siblings. Its methods are safe for concurrent use.
type Member struct {
	cfg Config

	active atomic.Bool // withdrawn: while set, nothing subscribes
	mu     sync.Mutex
	// claimed is set from a claim until the instance is back in; since is
	// its place's time.
	claimed bool
	since   time.Time
	// seen is the latest place time heard of, the instance's own claims
	// included (a Lamport clock).
	seen time.Time
	// known are the instances the last count heard from, and those that
	// asked for a count or announced themselves since, each with the value
	// of noted when it was noted (that of the count's start for those a
	// count heard from): a count forgets those noted before it started
	// that it did not hear from, and keeps those noted while it ran.
	known  map[string]uint64
	noted  uint64
	herald *nats.Subscription // the answers to the instance's announcement
	timer  *time.Timer
	reason string
	// stopped is set by Stop: no more claims, withdrawals or counts.
	stopped bool
	// halt ends the counts running when Stop is called; busy counts them
	// and the withdrawal's timer while it may still fire, for Stop to wait
	// for.
	haltCtx    context.Context
	cancelHalt context.CancelFunc
	busy       sync.WaitGroup

	refused refusals
}

// refusals logs the status requests refused for their reply subject at
// most once a second, with the number refused since the last line.
type refusals struct{ logevery.Limiter }

func (r *refusals) refused(log *slog.Logger, service, reply string) {
	if n, ok := r.Allow(); ok {
		log.Warn("passive health: refused a status request whose reply subject is not the service's own inbox (nothing published)",
			"subject", StatusSubject(service), "reply", reply, "want_under", StatusInbox(service), "refused_since_last_log", n)
	}
}

// New returns the Member of the instance cfg describes. It subscribes to
// nothing until [Member.Announce].
func New(cfg Config) *Member {
	if cfg.Inbound == nil {
		cfg.Inbound = func() bool { return true }
	}
	if cfg.Ejected == nil {
		cfg.Ejected = func(bool) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Member{cfg: cfg}
	m.haltCtx, m.cancelHalt = context.WithCancel(context.Background())
	return m
}

// Instance is the member as [Middleware] uses it.
func (m *Member) Instance() Instance {
	return Instance{Claim: m.Claim, Withdraw: m.WithdrawFor, Siblings: m.Count}
}

// Out reports whether passive health holds the instance out of its queue
// groups now; while it does, nothing may subscribe them. It takes no lock.
func (m *Member) Out() bool { return m.active.Load() }

// Ejected returns why passive health withdrew the instance, or "".
func (m *Member) Ejected() string {
	if !m.active.Load() {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reason
}

// hear notes a place time heard of. m.mu must be held.
func (m *Member) hear(t time.Time) {
	if t.After(m.seen) {
		m.seen = t
	}
}

// Claim marks the instance as leaving, for passive health, and returns
// its place: now, or just after the latest place heard of if the clock
// says otherwise. It reports false if the instance is not serving or
// holds a claim already.
func (m *Member) Claim() (Place, bool) {
	id := m.cfg.ID()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped || m.claimed || !m.cfg.Serving() {
		return Place{}, false
	}
	now := time.Now().UTC().Round(0) // wall clock only: places travel as text
	if !now.After(m.seen) {
		now = m.seen.Add(time.Nanosecond)
	}
	m.claimed, m.since, m.seen = true, now, now
	return Place{ID: id, Since: now}, true
}

// WithdrawFor takes the claiming instance out of its queue groups for d,
// for passive health, and then calls Config.Return. While it is out,
// nothing may subscribe (see [Member.Out]). It reports false, doing
// nothing, if the instance holds no claim, is out already, or is not
// serving (withdrawn by its health checks, or shut down), or after
// [Member.Stop]. d <= 0 ends a
// claim or a withdrawal at once.
func (m *Member) WithdrawFor(reason string, d time.Duration) bool {
	if d <= 0 {
		m.End()
		return true
	}
	m.mu.Lock()
	if m.stopped || m.active.Load() || !m.claimed || !m.cfg.Serving() {
		m.mu.Unlock()
		return false
	}
	m.active.Store(true)
	m.reason = fmt.Sprintf("%s; back in %v", reason, d)
	m.busy.Add(1) // done when the timer fires, or is stopped before
	m.timer = time.AfterFunc(d, func() {
		defer m.busy.Done()
		m.End()
	})
	m.cfg.Ejected(true)
	m.mu.Unlock()
	m.cfg.Leave()
	return true
}

// End ends a passive health claim or withdrawal; a withdrawal's end calls
// Config.Return.
func (m *Member) End() {
	m.mu.Lock()
	m.claimed, m.since = false, time.Time{}
	ended := m.endWithdrawal()
	m.mu.Unlock()
	if ended {
		m.cfg.Return()
	}
}

// endWithdrawal ends an active withdrawal (its timer stopped, Ejected(false)
// told) and reports whether there was one. m.mu must be held.
func (m *Member) endWithdrawal() bool {
	if !m.active.Load() {
		return false
	}
	if m.timer.Stop() {
		m.busy.Done()
	}
	m.timer, m.reason = nil, ""
	m.active.Store(false)
	m.cfg.Ejected(false)
	return true
}

// Answer returns the handler of StatusSubject that answers as the
// instance id, noting the asker's place. A request whose reply subject is
// not under StatusInbox(service) is refused whole (not noted, not
// answered; logged at most once a second).
func (m *Member) Answer(id string) nats.MsgHandler {
	inbox := StatusInbox(m.cfg.Service)
	return func(msg *nats.Msg) {
		if msg.Reply != "" && !underInbox(inbox, msg.Reply) {
			m.refused.refused(m.cfg.Logger, m.cfg.Service, msg.Reply)
			return
		}
		var req StatusRequest
		if len(msg.Data) > 0 && json.Unmarshal(msg.Data, &req) != nil {
			req = StatusRequest{}
		}
		st := Status{ID: id, Subset: m.cfg.Subset, Inbound: m.cfg.Inbound()}
		m.mu.Lock()
		m.hear(req.Since)
		if req.ID != "" && req.ID != id {
			m.know(req.ID) // a sibling: the next count waits for it
		}
		st.Serving = m.cfg.Serving()
		st.Ejected = m.active.Load()
		st.Leaving = m.claimed && !st.Ejected
		if m.claimed {
			st.Since = m.since
		}
		m.mu.Unlock()
		b, err := json.Marshal(st)
		if err == nil && msg.Reply != "" {
			msg.Respond(b) //nolint:errcheck // the asker counts whoever answers
		}
	}
}

// quiet is how long a count waits for one more answer, knownWait how long
// it waits for the instances it knows of, and maxKnown bounds those
// (asking is open to any client of the subject).
const (
	quiet     = 50 * time.Millisecond
	knownWait = time.Second
	maxKnown  = 1000
)

// ownTimeout bounds a count's wait for the instance's own answer (the
// caller's context bounds the count).
const ownTimeout = 5 * time.Second

// Announce makes the instance known to its siblings, and them to it, so
// that every count waits for all of them (a count that misses an answer is
// what could let too many leave): it asks for a count as id, which each
// sibling notes, and notes the IDs that answer, until [Member.Stop].
func (m *Member) Announce(id string) {
	body, err := json.Marshal(StatusRequest{ID: id})
	if err != nil {
		return
	}
	nc := m.cfg.Conn
	inbox := StatusInbox(m.cfg.Service) + nuid.Next()
	sub, err := nc.Subscribe(inbox, func(msg *nats.Msg) {
		var st Status
		if json.Unmarshal(msg.Data, &st) != nil || !st.Inbound || st.ID == "" || st.ID == id {
			return
		}
		m.mu.Lock()
		m.know(st.ID)
		m.mu.Unlock()
	})
	if err != nil {
		m.cfg.Logger.Warn("passive health: announcing the instance", "err", err)
		return
	}
	m.mu.Lock()
	m.herald = sub
	m.mu.Unlock()
	if err := nc.PublishRequest(StatusSubject(m.cfg.Service), inbox, body); err != nil {
		m.cfg.Logger.Warn("passive health: announcing the instance", "err", err)
	}
}

// Stop stops noting the answers to the announcement, ends the counts
// running (they return an error), and ends a claim or a withdrawal without
// calling Config.Return (Config.Ejected is told, false); from then on
// claims and withdrawals are refused. It returns once the counts and a
// withdrawal's timer that was firing have returned, so nothing of the
// member runs after it. Safe to call more than once.
func (m *Member) Stop() {
	m.cancelHalt()
	m.mu.Lock()
	m.stopped = true
	if m.herald != nil {
		m.herald.Unsubscribe()
	}
	m.claimed, m.since = false, time.Time{}
	m.endWithdrawal()
	m.mu.Unlock()
	m.busy.Wait()
}

// know notes a sibling's ID. m.mu must be held.
func (m *Member) know(id string) {
	if len(m.known) >= maxKnown {
		return
	}
	if m.known == nil {
		m.known = map[string]uint64{}
	}
	m.noted++
	m.known[id] = m.noted
}

// Count asks for the instances of the service, this one included, by
// their answers on StatusSubject: every answer that comes before ctx ends
// and within 50ms of the one before, or within 1s of the request while an
// instance it knows of (one that answered the previous count, or asked
// for a count or announced itself since) has not answered yet (an
// instance gone since is waited for once), and this instance's own
// answer, until ctx ends (at most 5s). [Member.Stop] ends it with an
// error.
func (m *Member) Count(ctx context.Context) ([]Sibling, error) {
	self := m.cfg.ID()
	req := StatusRequest{ID: self}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil, errors.New("siblings: counting: stopped")
	}
	m.busy.Add(1)
	defer m.busy.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.haltCtx, cancel)()
	if m.claimed {
		req.Since = m.since
	}
	start := m.noted
	m.mu.Unlock()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("siblings: counting: %w", err)
	}

	nc := m.cfg.Conn
	inbox := StatusInbox(m.cfg.Service) + nuid.Next()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("siblings: counting: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(StatusSubject(m.cfg.Service), inbox, body); err != nil {
		return nil, fmt.Errorf("siblings: counting: %w", err)
	}
	knownBy := time.Now().Add(knownWait)
	var sibs []Sibling
	seen := map[string]bool{}
	for {
		wait := quiet
		switch {
		case !seen[self]:
			wait = ownTimeout // ctx decides
		case m.missing(seen):
			wait = max(wait, time.Until(knownBy))
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
				break // quiet: everyone answered
			}
			return nil, fmt.Errorf("siblings: counting: %w", err)
		}
		var st Status
		if json.Unmarshal(msg.Data, &st) != nil || !st.Inbound || st.ID == "" || seen[st.ID] {
			continue
		}
		seen[st.ID] = true
		sibs = append(sibs, Sibling{
			Place:  Place{ID: st.ID, Since: st.Since},
			Subset: st.Subset, Serving: st.Serving, Ejected: st.Ejected, Leaving: st.Leaving,
		})
	}
	if !seen[self] {
		return nil, errors.New("siblings: counting: not even this instance answered")
	}
	m.mu.Lock()
	delete(seen, self)
	for id, n := range m.known {
		if n <= start && !seen[id] {
			delete(m.known, id) // gone: waited for once
		}
	}
	for id := range seen {
		if _, ok := m.known[id]; !ok && len(m.known) < maxKnown {
			if m.known == nil {
				m.known = map[string]uint64{}
			}
			m.known[id] = start
		}
	}
	for _, s := range sibs {
		m.hear(s.Since)
	}
	m.mu.Unlock()
	return sibs, nil
}

// missing reports whether an instance the member knows of is not in seen.
func (m *Member) missing(seen map[string]bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.known {
		if !seen[id] {
			return true
		}
	}
	return false
}

// underInbox reports whether reply is a subject one may publish to under
// inbox (which ends with a dot): at least one token after it, no empty
// token, no wildcard, no whitespace or control byte.
func underInbox(inbox, reply string) bool {
	rest, ok := strings.CutPrefix(reply, inbox)
	return ok && wire.LiteralSubject(rest)
}
