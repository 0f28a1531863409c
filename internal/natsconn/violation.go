package natsconn

import (
	"errors"
	"regexp"

	"github.com/nats-io/nats.go"
)

// Violation is what a permissions violation the broker reported on a
// connection refused. nats-server reports a publish or a subscription
// outside the user's permissions only as an asynchronous -ERR naming the
// subject (and a subscription's queue group); nats.go records it as the
// connection's LastError and passes it to the async error handler,
// wrapped in nats.ErrPermissionViolation.
type Violation struct {
	// Subscribe is set for a refused subscription, clear for a refused
	// publish.
	Subscribe bool
	// Subject is the subject refused.
	Subject string
	// Queue is the refused subscription's queue group, "" for none.
	Queue string
}

var (
	// nats-server: `Permissions Violation for Publish to "<subject>"`.
	publishViolation = regexp.MustCompile(`(?i)violation for publish to "([^"]+)"`)
	// nats-server: `Permissions Violation for Subscription to "<subject>"`,
	// then ` using queue "<queue>"` for a queue subscription, and
	// ` (sid "<sid>")` when a reload withdrew a subscription it had
	// accepted.
	subscribeViolation = regexp.MustCompile(`(?i)violation for subscription to "([^"]+)"(?: using queue "([^"]+)")?`)
)

// ParseViolation reads the permissions violation err reports: ok is false
// for any other error, and for a violation that names no publish or
// subscription subject (a publish refused for its reply subject).
func ParseViolation(err error) (v Violation, ok bool) {
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return Violation{}, false
	}
	s := err.Error()
	if m := subscribeViolation.FindStringSubmatch(s); m != nil {
		return Violation{Subscribe: true, Subject: m[1], Queue: m[2]}, true
	}
	if m := publishViolation.FindStringSubmatch(s); m != nil {
		return Violation{Subject: m[1]}, true
	}
	return Violation{}, false
}
