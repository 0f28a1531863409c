package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/natsconn"
)

// natsFlags are the flags of every command that connects to NATS.
type natsFlags struct {
	url     string
	creds   string
	nkey    string
	tlsCA   string
	tlsCert string
	tlsKey  string
	timeout time.Duration
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats", nats.DefaultURL, "NATS server `URLs`, comma-separated (the mesh's broker or any NATS deployment)")
	fs.StringVar(&f.creds, "creds", "", "user credentials `file` (JWT and NKey seed) for operator-mode NATS")
	fs.StringVar(&f.nkey, "nkey", "", "NKey seed `file` to authenticate with")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "CA `file` (PEM) to verify the NATS server with (default: the system's roots for tls:// URLs)")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "client certificate `file` (PEM) for NATS servers that verify clients")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "client key `file` (PEM) for --nats-tls-cert")
	fs.DurationVar(&f.timeout, "connect-timeout", 30*time.Second, "how long to wait for the first NATS connection")
}

// config is how the flags say to connect.
func (f *natsFlags) config(log *slog.Logger) agent.ConnectConfig {
	return agent.ConnectConfig{
		URL: f.url, Creds: f.creds, NKey: f.nkey,
		TLSCA: f.tlsCA, TLSCert: f.tlsCert, TLSKey: f.tlsKey,
		Timeout: f.timeout, Logger: log,
	}
}

// connect dials NATS as service (see agent.Connect): replies come back
// under the service's inbox prefix.
func (f *natsFlags) connect(ctx context.Context, service, name string, log *slog.Logger) (*nats.Conn, error) {
	cfg := f.config(log)
	cfg.Name = name
	return agent.Connect(ctx, service, cfg)
}

// refusals makes the broker's asynchronous refusals of nc's publishes and
// subscriptions (a permissions violation arrives as an -ERR some time after
// the request, never as its answer) end the returned context at once with
// the reason, so an admin command run with the wrong identity says why
// instead of waiting for its timeout. as names the identity in the
// message. Any earlier error handler keeps being called.
func refusals(ctx context.Context, nc *nats.Conn, as string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if _, ok := natsconn.ParseViolation(err); ok {
			cancel(fmt.Errorf("the broker refused it: %v (connected as %q with inbox prefix %q: run this as the mesh's admin, --nkey DIR/%s.nk or --creds DIR/%s.creds from natsmesh accounts generate, and --as if the admin has another name)",
				err, as, c.Opts.InboxPrefix, as, as))
		}
		if prev != nil {
			prev(c, sub, err)
		}
	})
	return ctx, func() { cancel(nil) }
}

// refused returns the reason refusals ended ctx with, or err unchanged.
func refused(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}
