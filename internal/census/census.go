package census

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/logevery"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Subject is where the instances of service answer caller's census:
// "$SRV.STATUS.<service>.<caller>" (passive health's sibling count is
// "$SRV.STATUS.<service>", without a caller). Subject(service, "*") is
// what an instance subscribes.
func Subject(service, caller string) string {
	return "$SRV.STATUS." + service + "." + caller
}

// Answer is one instance's answer to a census.
type Answer struct {
	// ID is the instance's ID: its discovery ID, and the third token of
	// its instance subject (wire.InstanceSubject).
	ID string `json:"id"`
	// Subset is its subset, "" for none.
	Subset string `json:"subset,omitempty"`
	// Addressable is whether it takes calls addressed to it now: it is
	// in its queue groups and holds its instance subject.
	Addressable bool `json:"addressable"`
}

// Responder answers the census requests of a service's callers for one
// instance. Service and Answer are required.
type Responder struct {
	Service string
	// Answer is the instance's answer now.
	Answer func() Answer
	Logger *slog.Logger

	refused logevery.Limiter
}

// Serve answers one census request (a nats.MsgHandler on Subject(Service,
// "*")): in the pair inbox of the subject's caller and the service only;
// any other request is dropped, said at most once a second.
func (r *Responder) Serve(m *nats.Msg) {
	caller, ok := strings.CutPrefix(m.Subject, Subject(r.Service, ""))
	inbox := wire.PairInbox(caller, r.Service) + "."
	if !ok || wire.ValidateName("caller", caller) != nil || !strings.HasPrefix(m.Reply, inbox) || !wire.LiteralSubject(m.Reply[len(inbox):]) {
		if n, ok := r.refused.Allow(); ok {
			log := r.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Warn("census: refused a request whose caller or reply subject is not its own (nothing published)",
				"subject", m.Subject, "reply", m.Reply, "refused_since_last_log", n)
		}
		return
	}
	b, err := json.Marshal(r.Answer())
	if err != nil {
		return
	}
	m.Respond(b)
}

// Defaults of a Census.
const (
	// DefaultMaxAge is how long a census stands: instances it found live
	// are offered that long (less those found silent since).
	DefaultMaxAge = 500 * time.Millisecond
	// DefaultWait bounds a census's wait for its first fitting answer: a
	// live instance answers in a round trip to the broker.
	DefaultWait = 100 * time.Millisecond
	// DefaultGather is how long a census gathers answers after its first
	// fitting one, so that picks spread over the instances, not all on
	// the nearest.
	DefaultGather = 5 * time.Millisecond
	// DefaultSuspectFor is how long an instance found silent is not
	// offered.
	DefaultSuspectFor = 10 * time.Second
)

// Census is a caller's view of the live instances of the services it
// calls. The zero value uses the defaults; it is safe for concurrent use.
type Census struct {
	MaxAge, Wait, Gather, SuspectFor time.Duration

	mu    sync.Mutex
	rolls map[string]*roll // by service and subset (rollKey)
	// suspects are, by service, the instances found silent, each with
	// when it may be offered again.
	suspects map[string]map[string]time.Time
}

// rollKey is the key of service's census for subset: a census gathers
// answers until a moment after the first that fits its subset, so it
// stands for that subset alone (a v2 instance a moment slower than v1's
// would be missing from a census taken for v1).
func rollKey(service, subset string) string {
	if subset == "" {
		subset = wire.AnySubset
	}
	return service + "." + subset
}

// roll is one service's latest census for one subset.
type roll struct {
	at time.Time
	// live are the IDs of the addressable instances of the subset that
	// answered: all a pick offers. Nothing else of an answer is kept (a
	// subset's name may be as long as a message: a holder of the
	// service's key could make its callers keep megabytes a census).
	live   []string
	taking chan struct{} // closed when the census being taken ends; nil when none is
}

// maxRolls bounds the services a Census keeps: past it, the oldest is
// dropped (a caller calls the mesh's services, far fewer).
const maxRolls = 4096

func (c *Census) maxAge() time.Duration     { return cmpOr(c.MaxAge, DefaultMaxAge) }
func (c *Census) wait() time.Duration       { return cmpOr(c.Wait, DefaultWait) }
func (c *Census) gather() time.Duration     { return cmpOr(c.Gather, DefaultGather) }
func (c *Census) suspectFor() time.Duration { return cmpOr(c.SuspectFor, DefaultSuspectFor) }

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Pick returns a live, addressable instance of service in subset (""
// any), not suspected, chosen at random, from a census at most MaxAge old
// (taking one over mux, whose owner is the caller, when there is none,
// within ctx and Wait); false when there is none, or ctx ended first. A
// pick that waited for another's census, which that one's context cut
// short, takes one of its own.
func (c *Census) Pick(ctx context.Context, mux *replymux.Mux, nc *nats.Conn, service, subset string) (string, bool) {
	c.mu.Lock()
	if c.rolls == nil {
		c.rolls = map[string]*roll{}
	}
	key := rollKey(service, subset)
	r := c.rolls[key]
	if r == nil {
		if len(c.rolls) >= maxRolls {
			c.dropOldest()
		}
		r = &roll{}
		c.rolls[key] = r
	}
	for r.taking != nil || r.at.IsZero() || time.Since(r.at) > c.maxAge() {
		if r.taking == nil {
			r.taking = make(chan struct{})
			c.mu.Unlock()
			live := c.take(ctx, mux, nc, service, subset)
			c.mu.Lock()
			cut := ctx.Err() != nil
			if !cut { // a census cut short says nothing of who is missing
				r.at, r.live = time.Now(), live
			}
			close(r.taking)
			r.taking = nil
			if cut {
				// The roll is as old as before: offer nothing from it.
				c.mu.Unlock()
				return "", false
			}
			break
		}
		taking, at := r.taking, r.at
		c.mu.Unlock()
		select {
		case <-taking:
		case <-ctx.Done():
			return "", false
		}
		c.mu.Lock()
		if r.taking == nil && !r.at.Equal(at) {
			break // the census ended: it stands for this pick too
		}
		// Another pick's census, cut short by its context, left the roll
		// as it was (or another is being taken): ask again.
	}
	defer c.mu.Unlock()
	now := time.Now()
	suspects := c.suspects[service]
	var fit []string
	for _, id := range r.live {
		if until, ok := suspects[id]; ok {
			if now.Before(until) {
				continue
			}
			delete(suspects, id)
		}
		fit = append(fit, id)
	}
	if len(fit) == 0 {
		return "", false
	}
	return fit[rand.IntN(len(fit))], true
}

// Suspect marks instance id of service as silent: it is not offered for
// SuspectFor.
func (c *Census) Suspect(service, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.suspects == nil || len(c.suspects) >= maxRolls {
		c.suspects = map[string]map[string]time.Time{}
	}
	ids := c.suspects[service]
	if ids == nil || len(ids) >= maxRolls {
		ids = map[string]time.Time{}
		c.suspects[service] = ids
	}
	ids[id] = time.Now().Add(c.suspectFor())
}

// dropOldest forgets the oldest census (c.mu held).
func (c *Census) dropOldest() {
	var oldest string
	var at time.Time
	for s, r := range c.rolls {
		if r.taking == nil && (oldest == "" || r.at.Before(at)) {
			oldest, at = s, r.at
		}
	}
	delete(c.rolls, oldest)
}

// take asks service's instances and returns the IDs of the addressable
// instances of subset ("" any) that answered within Wait (less once one
// did: Gather after it; none at once when nothing subscribes the census).
func (c *Census) take(ctx context.Context, mux *replymux.Mux, nc *nats.Conn, service, subset string) []string {
	var (
		mu   sync.Mutex
		live []string
		fit  = make(chan struct{}, 1)
		none = make(chan struct{}, 1)
	)
	in, err := mux.Listen(service, func(m *nats.Msg, err error) {
		if m == nil {
			return
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			// nats-server's "no responders": nothing subscribes the
			// census (no instance, or only services that do not answer
			// one: NATS-native ones, agents older than it). Said at once,
			// so such a service's silent calls do not wait Wait.
			select {
			case none <- struct{}{}:
			default:
			}
			return
		}
		var a Answer
		if json.Unmarshal(m.Data, &a) != nil || !wire.ValidInstance(a.ID) || !a.Addressable || subset != "" && a.Subset != subset {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(live) >= maxRolls {
			return
		}
		live = append(live, a.ID)
		select {
		case fit <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil
	}
	defer in.Close()
	if nc.PublishMsg(&nats.Msg{Subject: Subject(service, mux.Owner()), Reply: in.Subject()}) != nil {
		return nil
	}
	wait := time.NewTimer(c.wait())
	defer wait.Stop()
	select {
	case <-fit:
		wait.Reset(c.gather())
		select {
		case <-wait.C:
		case <-ctx.Done():
		}
	case <-none:
	case <-wait.C:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	return live
}
