package meshstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Take is a caller's wait for a call's first sign of life (docs/wire.md,
// "Liveness"): a live callee answers, or accepts at once a call to
// confirm (wire.HeaderConfirm), or any other once it has worked on it for
// wire.StreamOpenAfter; silence past the wait is an instance that froze
// or died with the call, which is then sent again: to an instance a
// census finds live, else to the queue group.
//
// The wait is at least its floor, and grows when live instances' signs
// come late, as TCP's retransmission timeout does (RFC 6298): it keeps a
// smoothed delay of the signs and its variation, and waits their sum with
// four variations, so a host too busy to answer in the floor (a loaded
// machine, a long GC) does not have its calls sent twice, while a frozen
// instance, which gives no sign, does not lengthen it. A delay is a
// sign's time from the send, less wire.StreamOpenAfter for the accept of
// a call that is not confirmed (the callee waited that long on purpose).
// The estimate is kept per service called: a far or busy service's late
// signs lengthen the wait for its own calls, not for those to a near one,
// whose frozen instance would otherwise cost them as long.
// Safe for concurrent use: one per caller.
type Take struct {
	floor time.Duration
	// floorValue is wire.HeaderConfirm's value for floor (takeValue),
	// made once: the wait of most calls.
	floorValue []string

	mu    sync.Mutex
	paths map[string]*estimate // by service

	// census finds the live instances a silent call is sent to next.
	census census.Census
}

// estimate is RFC 6298's state for one service's signs.
type estimate struct {
	srtt   time.Duration // smoothed delay; 0 before the first sign
	rttvar time.Duration
}

// maxPaths bounds the services a Take keeps an estimate for: past it, a
// new service waits the floor until an estimate is dropped (never: the
// services a caller calls are the mesh's, far fewer).
const maxPaths = 4096

// NewTake returns the wait whose floor is floor (0: wire.DefaultTakeWithin).
func NewTake(floor time.Duration) *Take {
	if floor <= 0 {
		floor = wire.DefaultTakeWithin
	}
	return &Take{floor: floor, floorValue: []string{floor.Round(time.Millisecond).String()}, paths: map[string]*estimate{}}
}

// Within is the wait for a call to service's first sign now: the floor,
// or the delays' estimate when that is longer (for a call not confirmed,
// plus wire.StreamOpenAfter), at most wire.MaxTakeWithin.
func (t *Take) Within(service string, confirm bool) time.Duration {
	var est time.Duration
	t.mu.Lock()
	if e := t.paths[service]; e != nil {
		est = e.srtt + 4*e.rttvar
	}
	t.mu.Unlock()
	if !confirm {
		est += wire.StreamOpenAfter
	}
	return min(max(t.floor, est), wire.MaxTakeWithin)
}

// observe takes the delay of a sign of life of service (RFC 6298's
// update, with its gains of 1/8 and 1/4).
func (t *Take) observe(service string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.paths[service]
	if e == nil {
		if len(t.paths) >= maxPaths {
			return
		}
		t.paths[service] = &estimate{srtt: max(d, time.Microsecond), rttvar: d / 2}
		return
	}
	e.rttvar += ((e.srtt - d).Abs() - e.rttvar) / 4
	e.srtt += (d - e.srtt) / 8
}

// send sends r's request and waits for its first message, sending it
// again each time no instance gives a sign of life within the wait: to an
// instance a census finds live (census.Census.Pick), addressed by its
// instance subject, or to the queue group when the census offers none
// (or the call's subject is not a service's, a gateway's NATS route). An
// addressed instance that stays silent too, or that no longer holds its
// subject (no responders), is not offered again for a while
// (census.Census.Suspect), unless nc was down meanwhile; after no
// responders the next send goes to the queue group. That is safe: a call to confirm is started by
// no instance this side has not confirmed, and this side confirms none
// that was silent; any other is idempotent (pipeline's rule). A deadline
// closer than the wait bounds the last one: silence to the deadline is a
// timeout. Silence while nc is down says nothing of the instance: the
// call is sent again once nc is back, not into nats.go's reconnect
// buffer, whence every copy would reach the service at once (each one a
// slot held, or a run).
func (t *Take) send(ctx context.Context, mux *replymux.Mux, nc *nats.Conn, r Request) (*nats.Msg, *replymux.Inbox, error) {
	deadline, bounded := ctx.Deadline()
	h := r.Msg.Header
	// msg is what this send sends: r.Msg (to the queue group), or a copy
	// addressed to an instance. r.Msg itself is never written: the
	// outbound pipeline tracks it while the call lasts, and its refusal
	// handler reads its Subject on nats.go's callback goroutine.
	msg := r.Msg
	var addressed string // the instance this send is addressed to, if any
	for sent := 1; ; sent++ {
		within := t.Within(r.Service, r.Confirm)
		if r.Confirm {
			// The callee waits for the start twice as long, from the
			// call's arrival.
			h[wire.HeaderConfirm] = t.takeValue(within)
		}
		wait := within
		if bounded && time.Until(deadline) <= within {
			wait = 0
		}
		var reconnects uint64
		if addressed != "" {
			reconnects = nc.Stats().Reconnects
		}
		start := time.Now()
		first, rest, err := mux.CallLate(ctx, msg, r.Service, wait, t.late(nc, start, within, r))
		if err == nil {
			t.observe(r.Service, t.delay(first, start, r.Confirm))
		}
		gone := addressed != "" && errors.Is(err, nats.ErrNoResponders) && ctx.Err() == nil
		if !errors.Is(err, replymux.ErrSilent) && !gone {
			if err != nil && sent > 1 && ctx.Err() != nil {
				return nil, nil, &wire.Error{Kind: wire.KindTimeout, Err: err,
					Message: fmt.Sprintf("no instance took the call before its deadline: sent %d times, each unanswered within %v", sent, within)}
			}
			return first, rest, err
		}
		down := !nc.IsConnected()
		connected(ctx, nc)
		if addressed != "" && !down && nc.Stats().Reconnects == reconnects {
			// Silent while this side was connected throughout: the
			// instance's silence, not the caller's.
			t.census.Suspect(r.Service, addressed)
		}
		msg, addressed = r.Msg, ""
		// An addressed send that found no one (the instance left its
		// groups, or a census answer named an ID nobody holds) is
		// answered at once: the next send goes to the queue group, which
		// waits the bound if silent, so no census, however forged, makes
		// a call's copies faster than one a bound each two sends.
		if subset, ok := serviceSubset(r.Msg.Subject, r.Service); ok && !gone {
			if id, ok := t.census.Pick(ctx, mux, nc, r.Service, subset); ok {
				if subj, ok := wire.ToInstance(r.Msg.Subject, id); ok {
					// The header is the call's: its fields set here
					// (the confirm wait, the time left) go in both.
					msg, addressed = &nats.Msg{Subject: subj, Header: h, Data: r.Msg.Data}, id
					if subset != "" {
						h[wire.HeaderSubset] = []string{subset}
					}
				}
			}
		}
		if left := time.Until(deadline); bounded && left > 0 {
			// The time left, as the call's first message said it.
			wire.SetTimeout(h, left)
		}
	}
}

// serviceSubset returns the subset a call subject of service names (""
// any), and false when subject is not one (a NATS route's).
func serviceSubset(subject, service string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, wire.Prefix+".")
	if !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, service+"."); !ok {
		return "", false
	}
	subset, _, ok := strings.Cut(rest, ".")
	return wire.NormalSubset(subset), ok
}

// connected returns once nc is connected (at once when it is), closed, or
// ctx is done.
func connected(ctx context.Context, nc *nats.Conn) {
	if nc.IsConnected() {
		return
	}
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)
	for !nc.IsConnected() && !nc.IsClosed() {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// delay is the delay of m, a call's first message, sent at start.
func (t *Take) delay(m *nats.Msg, start time.Time, confirm bool) time.Duration {
	d := time.Since(start)
	if !confirm && wire.FrameOf(m.Header) == wire.FrameAccept {
		d = max(d-wire.StreamOpenAfter, 0)
	}
	return d
}

// late is what becomes of the first message of a call sent at start and
// given up as silent after within, if it comes while the call lasts: the
// instance was alive but slow, so its delay counts (at most twice the
// wait it missed: an instance that wakes from a long freeze with calls
// in its socket must not lengthen the wait for ever), and an instance
// that opened it is told to drop it (a call to confirm it would
// otherwise keep waiting for its start).
func (t *Take) late(nc *nats.Conn, start time.Time, within time.Duration, r Request) func(*nats.Msg) {
	return func(m *nats.Msg) {
		t.observe(r.Service, min(t.delay(m, start, r.Confirm), 2*within))
		inbox := m.Header.Get(wire.HeaderStreamInbox)
		// The pair inbox is named here, not when the hook is made: every
		// call makes one, few ever run it.
		if inbox == "" || !(pairInbox{r.Service, r.Caller}).holds(inbox) {
			return
		}
		h := wire.ErrorMsg(errGaveUp).Header
		h[wire.HeaderFrame] = []string{wire.FrameCancel}
		h[wire.HeaderSeq] = []string{"1"}
		nc.PublishMsg(&nats.Msg{Subject: inbox, Header: h})
	}
}

// errGaveUp is the cancel of a call whose caller gave up on its instance.
var errGaveUp = &wire.Error{Kind: wire.KindTimeout, Message: "the caller took this instance for frozen or gone and sent the call elsewhere"}

// takeValue is wire.HeaderConfirm's value for d, in whole milliseconds.
func (t *Take) takeValue(d time.Duration) []string {
	if d == t.floor {
		return t.floorValue
	}
	return []string{d.Round(time.Millisecond).String()}
}
