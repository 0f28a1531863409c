package meshstat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// Defaults of GatherOptions.
const (
	DefaultSubject = "$SRV.STATS"
	DefaultQuiet   = 300 * time.Millisecond
	DefaultTimeout = 3 * time.Second
)

// GatherOptions says how to gather. The zero value takes the defaults noted
// on each field.
type GatherOptions struct {
	// Subject is where the request goes. Default "$SRV.STATS" (every micro
	// service); "$SRV.STATS.orders" asks one service's instances.
	Subject string
	// Quiet ends the gathering once no answer came for this long (counted
	// from the request, then from each answer). Default 300ms.
	Quiet time.Duration
	// Timeout ends the gathering at the latest this long after the request,
	// however many answers still come. Default 3s.
	Timeout time.Duration
}

func (o GatherOptions) withDefaults() GatherOptions {
	if o.Subject == "" {
		o.Subject = DefaultSubject
	}
	if o.Quiet <= 0 {
		o.Quiet = DefaultQuiet
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// Gather sends one request to opts.Subject with a reply inbox of nc (so nc's
// inbox prefix is where the answers go: in a mesh with generated accounts,
// connect as the admin or the bridge, whose discovery pair inbox
// wire.PairInbox(name, wire.PeerSRV) is the only one services may answer
// into; see docs/security.md) and collects the answers until a quiet period, the
// timeout or ctx ends it; answers that do not decode are listed in
// Sample.Problems. No one answering is an empty sample, not an error.
// Errors are those of the connection.
func Gather(ctx context.Context, nc *nats.Conn, opts GatherOptions) (Sample, error) {
	opts = opts.withDefaults()
	s := Sample{At: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	inbox := replyInbox(nc)
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return s, fmt.Errorf("meshstat: %w", err)
	}
	defer sub.Unsubscribe()
	// Thousands of instances answer at once: let the subscription buffer
	// them rather than drop them as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return s, fmt.Errorf("meshstat: %w", err)
	}
	if err := nc.PublishRequest(opts.Subject, inbox, nil); err != nil {
		return s, fmt.Errorf("meshstat: %w", err)
	}
	for {
		qctx, qcancel := context.WithTimeout(ctx, opts.Quiet)
		m, err := sub.NextMsgWithContext(qctx)
		qcancel()
		switch {
		case err == nil:
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return s, fmt.Errorf("meshstat: %w", ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return s, nil // quiet, or the overall timeout
		case errors.Is(err, nats.ErrNoResponders):
			return s, nil // no one is there
		default:
			return s, fmt.Errorf("meshstat: %w", err)
		}
		snap, err := Decode(m.Data, time.Now())
		if err != nil {
			s.Problems = append(s.Problems, err.Error())
			continue
		}
		s.Snapshots = append(s.Snapshots, snap)
	}
}

// Sampler gathers samples and reports the window since the previous one.
// Its methods are safe for concurrent use; concurrent calls gather one after
// the other.
type Sampler struct {
	nc   *nats.Conn
	opts GatherOptions

	mu   sync.Mutex
	prev Sample
}

// NewSampler returns a Sampler that gathers over nc with opts.
func NewSampler(nc *nats.Conn, opts GatherOptions) *Sampler {
	return &Sampler{nc: nc, opts: opts}
}

// Next gathers a sample and returns the report of the window since the
// previous call's sample; the first call's report has the instances but no
// traffic. On error the previous sample is kept.
func (s *Sampler) Next(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := Gather(ctx, s.nc, s.opts)
	if err != nil {
		return Report{}, err
	}
	r := Compute(s.prev, cur)
	s.prev = cur
	return r, nil
}

// replyInbox is the reply subject of one gathering: under the discovery
// pair inbox of the connection's mesh name when its inbox prefix is a
// mesh inbox (wire.InboxPrefix(name)), where the generated permissions
// let services answer; a fresh inbox of nc otherwise (nats.go's default
// prefix, for a broker without permissions).
//
// Every service may publish into that pair inbox, and sees the reply
// subject of each broadcast request ($SRV.STATS), so the last token is
// random (crypto/rand): with a nuid (sequential), two broadcasts told a
// service the reply subject of the next gathering, and it answered a
// request to another service alone ($SRV.STATS.inventory), which it never
// receives, as that service.
func replyInbox(nc *nats.Conn) string {
	if name, ok := strings.CutPrefix(nc.Opts.InboxPrefix, wire.InboxPrefix("")); ok && name != "" && !strings.Contains(name, ".") {
		return wire.PairInbox(name, wire.PeerSRV) + "." + rand.Text()
	}
	return nc.NewInbox()
}
