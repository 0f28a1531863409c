package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/traffic"
)

// Passive health (outlier detection, package traffic) takes an instance
// whose service keeps failing out of its queue groups for a while. The
// agent's part is here: the claim of a place to leave, the withdrawal with
// its timed return, and counting the siblings, so that no more instances
// leave than the policy allows and the last serving instance of a queue
// group never does.
//
// Siblings are counted through discovery: every agent's discovery
// responder also answers on the subject StatusSubject(service), outside
// any queue group, so one request is answered by every instance of the
// service with its [Status]. The request carries the asker's place (a
// [StatusRequest]), and an answering instance notes its time, so that a
// place it claims later comes after it (see traffic.Place).

// StatusSubject is the discovery subject on which every instance of
// service answers with its [Status] (in the $SRV namespace of nats.go
// micro, which a service's NATS user may use for its own name).
func StatusSubject(service string) string { return "$SRV.STATUS." + service }

// StatusRequest is the body of a request on StatusSubject: the asker's
// ID, and its place's time when it is leaving or out. An empty body is a
// request too.
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

// ejection is an instance's claim and withdrawal by passive health.
type ejection struct {
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
	// asked for a count or announced themselves since.
	known  map[string]bool
	herald *nats.Subscription // the answers to the instance's announcement
	timer  *time.Timer
	reason string
}

// ejected returns why passive health withdrew the instance, or "".
func (in *inbound) ejected() string {
	if !in.ej.active.Load() {
		return ""
	}
	in.ej.mu.Lock()
	defer in.ej.mu.Unlock()
	return in.ej.reason
}

// hear notes a place time heard of. in.ej.mu must be held.
func (in *inbound) hear(t time.Time) {
	if t.After(in.ej.seen) {
		in.ej.seen = t
	}
}

// claim marks the instance as leaving, for passive health, and returns
// its place: now, or just after the latest place heard of if the clock
// says otherwise. It reports false if the instance is not serving or
// holds a claim already.
func (a *Agent) claim() (traffic.Place, bool) {
	in := a.in
	id := a.ID()
	in.ej.mu.Lock()
	defer in.ej.mu.Unlock()
	if in.ej.claimed || !in.serving() {
		return traffic.Place{}, false
	}
	now := time.Now().UTC().Round(0) // wall clock only: places travel as text
	if !now.After(in.ej.seen) {
		now = in.ej.seen.Add(time.Nanosecond)
	}
	in.ej.claimed, in.ej.since, in.ej.seen = true, now, now
	return traffic.Place{ID: id, Since: now}, true
}

// withdrawFor takes the claiming instance out of its queue groups for d,
// for passive health, and puts it back afterwards unless its last health
// check failed (then the health loop restores it once checks pass). While
// it is out, neither the health loop nor anything else subscribes. It
// reports false, doing nothing, if the instance holds no claim, is out
// already, or is not serving (withdrawn by its health checks, or shut
// down). d <= 0 ends a claim or a withdrawal at once.
func (a *Agent) withdrawFor(reason string, d time.Duration) bool {
	in := a.in
	if d <= 0 {
		in.endEjection()
		return true
	}
	in.ej.mu.Lock()
	if in.ej.active.Load() || !in.ej.claimed || !in.serving() {
		in.ej.mu.Unlock()
		return false
	}
	in.ej.active.Store(true)
	in.ej.reason = fmt.Sprintf("%s; back in %v", reason, d)
	in.ej.timer = time.AfterFunc(d, in.endEjection)
	a.cfg.Telemetry.SetEjected(a.cfg.Service, a.cfg.Subset, true)
	in.ej.mu.Unlock()
	in.withdraw()
	return true
}

// endEjection ends a passive health claim or withdrawal.
func (in *inbound) endEjection() {
	in.ej.mu.Lock()
	in.ej.claimed, in.ej.since = false, time.Time{}
	if !in.ej.active.Load() {
		in.ej.mu.Unlock()
		return
	}
	in.ej.timer.Stop()
	in.ej.timer, in.ej.reason = nil, ""
	in.ej.active.Store(false)
	in.a.cfg.Telemetry.SetEjected(in.a.cfg.Service, in.a.cfg.Subset, false)
	in.ej.mu.Unlock()
	in.mu.Lock()
	healthy := in.healthErr == nil
	in.mu.Unlock()
	if !healthy {
		return
	}
	if err := in.subscribe(); err != nil {
		in.a.log.Error("subscribing after passive health cool-off", "err", err)
		return
	}
	if in.serving() { // not after Shutdown
		in.a.log.Info("passive health: back in its queue groups (probation)")
	}
}

// statusHandler answers StatusSubject as the instance id, noting the
// asker's place.
func (a *Agent) statusHandler(id string) nats.MsgHandler {
	return func(m *nats.Msg) {
		var req StatusRequest
		if len(m.Data) > 0 && json.Unmarshal(m.Data, &req) != nil {
			req = StatusRequest{}
		}
		in := a.in
		st := Status{ID: id, Subset: a.cfg.Subset, Inbound: in.enabled()}
		in.ej.mu.Lock()
		in.hear(req.Since)
		if req.ID != "" && req.ID != id {
			in.know(req.ID) // a sibling: the next count waits for it
		}
		st.Serving = in.serving()
		st.Ejected = in.ej.active.Load()
		st.Leaving = in.ej.claimed && !st.Ejected
		if in.ej.claimed {
			st.Since = in.ej.since
		}
		in.ej.mu.Unlock()
		b, err := json.Marshal(st)
		if err == nil && m.Reply != "" {
			m.Respond(b) //nolint:errcheck // the asker counts whoever answers
		}
	}
}

// siblingsQuiet is how long a discovery round waits for one more answer,
// siblingsKnown how long it waits for the instances it knows of, and
// maxKnown bounds those (asking is open to any client of the subject).
const (
	siblingsQuiet = 50 * time.Millisecond
	siblingsKnown = time.Second
	maxKnown      = 1000
)

// announce makes the instance known to its siblings, and them to it, so
// that every count waits for all of them (a count that misses an answer is
// what could let too many leave): it asks for a count as id, which each
// sibling notes, and notes the IDs that answer.
func (in *inbound) announce(id string) {
	a := in.a
	body, err := json.Marshal(StatusRequest{ID: id})
	if err != nil {
		return
	}
	inbox := a.nc.NewInbox()
	sub, err := a.nc.Subscribe(inbox, func(m *nats.Msg) {
		var st Status
		if json.Unmarshal(m.Data, &st) != nil || !st.Inbound || st.ID == "" || st.ID == id {
			return
		}
		in.ej.mu.Lock()
		in.know(st.ID)
		in.ej.mu.Unlock()
	})
	if err != nil {
		a.log.Warn("passive health: announcing the instance", "err", err)
		return
	}
	in.ej.mu.Lock()
	in.ej.herald = sub
	in.ej.mu.Unlock()
	if err := a.nc.PublishRequest(StatusSubject(a.cfg.Service), inbox, body); err != nil {
		a.log.Warn("passive health: announcing the instance", "err", err)
	}
}

// know notes a sibling's ID. in.ej.mu must be held.
func (in *inbound) know(id string) {
	if len(in.ej.known) >= maxKnown {
		return
	}
	if in.ej.known == nil {
		in.ej.known = map[string]bool{}
	}
	in.ej.known[id] = true
}

// siblings asks for the instances of the agent's service, this one
// included, by their answers on StatusSubject: every answer that comes
// before ctx ends and within siblingsQuiet of the one before, or within
// siblingsKnown of the request while an instance it knows of (one that
// answered the previous round, or asked for a count or announced itself
// since) has not answered yet (an instance gone since is waited for once),
// and this instance's own answer, until ctx ends.
func (a *Agent) siblings(ctx context.Context) ([]traffic.Sibling, error) {
	in := a.in
	self := a.ID()
	req := StatusRequest{ID: self}
	in.ej.mu.Lock()
	if in.ej.claimed {
		req.Since = in.ej.since
	}
	in.ej.mu.Unlock()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("agent: counting siblings: %w", err)
	}

	inbox := a.nc.NewInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("agent: counting siblings: %w", err)
	}
	defer sub.Unsubscribe()
	if err := a.nc.PublishRequest(StatusSubject(a.cfg.Service), inbox, body); err != nil {
		return nil, fmt.Errorf("agent: counting siblings: %w", err)
	}
	knownBy := time.Now().Add(siblingsKnown)
	var sibs []traffic.Sibling
	seen := map[string]bool{}
	for {
		wait := siblingsQuiet
		switch {
		case !seen[self]:
			wait = siblingsTimeout // ctx decides
		case in.missing(seen):
			wait = max(wait, time.Until(knownBy))
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
				break // quiet: everyone answered
			}
			return nil, fmt.Errorf("agent: counting siblings: %w", err)
		}
		var st Status
		if json.Unmarshal(m.Data, &st) != nil || !st.Inbound || st.ID == "" || seen[st.ID] {
			continue
		}
		seen[st.ID] = true
		sibs = append(sibs, traffic.Sibling{
			Place:  traffic.Place{ID: st.ID, Since: st.Since},
			Subset: st.Subset, Serving: st.Serving, Ejected: st.Ejected, Leaving: st.Leaving,
		})
	}
	if !seen[self] {
		return nil, errors.New("agent: counting siblings: not even this instance answered")
	}
	in.ej.mu.Lock()
	delete(seen, self)
	in.ej.known = seen
	for _, s := range sibs {
		in.hear(s.Since)
	}
	in.ej.mu.Unlock()
	return sibs, nil
}

// missing reports whether an instance the agent knows of is not in seen.
func (in *inbound) missing(seen map[string]bool) bool {
	in.ej.mu.Lock()
	defer in.ej.mu.Unlock()
	for id := range in.ej.known {
		if !seen[id] {
			return true
		}
	}
	return false
}

// siblingsTimeout bounds a count's wait for the instance's own answer (the
// caller's context bounds the count).
const siblingsTimeout = 5 * time.Second
