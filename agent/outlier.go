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
// agent's part is here: the withdrawal with its timed return, and
// counting the siblings, so that the last serving instance of a queue
// group never leaves.
//
// Siblings are counted through discovery: every agent's discovery
// responder also answers on the subject StatusSubject(service), outside
// any queue group, so one request is answered by every instance of the
// service with its [Status].

// StatusSubject is the discovery subject on which every instance of
// service answers with its [Status] (in the $SRV namespace of nats.go
// micro, which a service's NATS user may use for its own name).
func StatusSubject(service string) string { return "$SRV.STATUS." + service }

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
}

// ejection is an instance's withdrawal by passive health.
type ejection struct {
	active atomic.Bool // while set, nothing subscribes
	mu     sync.Mutex
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

// withdrawFor takes the instance out of its queue groups for d, for
// passive health, and puts it back afterwards unless its last health
// check failed (then the health loop restores it once checks pass). While
// it is out, neither the health loop nor anything else subscribes. d <= 0
// ends a withdrawal at once. It reports false, doing nothing, if the
// instance is not serving (withdrawn already, or shut down).
func (a *Agent) withdrawFor(reason string, d time.Duration) bool {
	in := a.in
	if d <= 0 {
		in.endEjection()
		return true
	}
	in.ej.mu.Lock()
	if in.ej.active.Load() || !in.serving() {
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

// endEjection ends a passive health withdrawal.
func (in *inbound) endEjection() {
	in.ej.mu.Lock()
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
		in.a.log.Info("passive health: cool-off over, serving again (probation)")
	}
}

// statusHandler answers StatusSubject as the instance id.
func (a *Agent) statusHandler(id string) nats.MsgHandler {
	return func(m *nats.Msg) {
		st := Status{ID: id, Subset: a.cfg.Subset, Inbound: a.in.enabled(), Serving: a.in.serving(), Ejected: a.in.ejected() != ""}
		b, err := json.Marshal(st)
		if err == nil && m.Reply != "" {
			m.Respond(b) //nolint:errcheck // the asker counts whoever answers
		}
	}
}

// siblingsQuiet is how long a discovery round waits for one more answer.
const siblingsQuiet = 50 * time.Millisecond

// siblings counts the instances of the agent's service, this one
// included, by their answers on StatusSubject: every answer that comes
// before ctx ends and within siblingsQuiet of the one before.
func (a *Agent) siblings(ctx context.Context) (traffic.Siblings, error) {
	var sib traffic.Siblings
	inbox := a.nc.NewInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return sib, fmt.Errorf("agent: counting siblings: %w", err)
	}
	defer sub.Unsubscribe()
	if err := a.nc.PublishRequest(StatusSubject(a.cfg.Service), inbox, nil); err != nil {
		return sib, fmt.Errorf("agent: counting siblings: %w", err)
	}
	wait := 4 * siblingsQuiet // the first answer, this instance's own, is quick
	seen := map[string]bool{}
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
				break // quiet: everyone answered
			}
			return sib, fmt.Errorf("agent: counting siblings: %w", err)
		}
		wait = siblingsQuiet
		var st Status
		if json.Unmarshal(m.Data, &st) != nil || !st.Inbound || seen[st.ID] {
			continue
		}
		seen[st.ID] = true
		sib.Total++
		if st.Serving {
			sib.Serving++
			if st.Subset == a.cfg.Subset {
				sib.SubsetServing++
			}
		}
	}
	if len(seen) == 0 {
		return sib, errors.New("agent: counting siblings: not even this instance answered")
	}
	return sib, nil
}
