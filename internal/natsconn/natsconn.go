package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/batchconn"
	"github.com/natsmesh/natsmesh/wire"
)

// Config says how a service (an agent, or the edge gateway under its
// caller name) connects to NATS. The zero value connects to
// nats://127.0.0.1:4222 without authentication.
type Config struct {
	// URL is one or more NATS server URLs, comma-separated. Default
	// nats.DefaultURL.
	URL string
	// Name is the connection's name, shown by the broker's monitoring.
	// Default "natsmesh:<service>".
	Name string
	// Creds is a user credentials file (JWT and NKey seed) for operator-mode
	// NATS; NKey is an NKey seed file. At most one.
	Creds, NKey string
	// TLSCA verifies the server's certificate (default: the system's roots
	// for tls:// URLs); TLSCert and TLSKey are a client certificate for
	// servers that verify clients.
	TLSCA, TLSCert, TLSKey string
	// Timeout bounds the wait for the first connection, which is retried
	// until then so a sidecar may start before its broker. Default 30s.
	// Once connected, the connection reconnects forever.
	Timeout time.Duration
	// Logger receives disconnections and reconnections. Default
	// slog.Default().
	Logger *slog.Logger
	// Options are further nats.go options, applied last.
	Options []nats.Option
}

// ConfigError is a setting that can never connect: a bad service name, a
// credentials file and an NKey seed together, a missing file. Err, when
// set, is the cause (wire.ErrInvalidName for a bad name).
type ConfigError struct {
	Msg string
	Err error
}

func (e *ConfigError) Error() string { return e.Msg }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, v ...any) error {
	err := fmt.Errorf(format, v...)
	return &ConfigError{Msg: err.Error(), Err: errors.Unwrap(err)}
}

// Validate reports the settings that can never connect as service, without
// dialing: those of [Config.Check], and a credentials, seed or CA file that
// cannot be read.
func (cfg Config) Validate(service string) error {
	_, err := cfg.options(service)
	return err
}

// Check reports the settings that can never connect as service that show
// without touching anything outside the process: a bad service name, Creds
// and NKey together, half a client certificate. A component's constructor
// calls it, and leaves the files to Validate or Connect (its Start): a
// constructor does no I/O.
func (cfg Config) Check(service string) error {
	if err := wire.ValidateName("service", service); err != nil {
		return &ConfigError{Msg: err.Error(), Err: err}
	}
	if cfg.Creds != "" && cfg.NKey != "" {
		return configErrorf("a credentials file and an NKey seed are exclusive: pick one way to authenticate")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return configErrorf("a TLS client certificate and its key go together")
	}
	return nil
}

// options validates cfg and returns the nats.go options it stands for.
func (cfg Config) options(service string) ([]nats.Option, error) {
	if err := cfg.Check(service); err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = "natsmesh:" + service
	}
	log := cfg.logger()
	opts := []nats.Option{
		nats.Name(name),
		nats.CustomInboxPrefix(wire.InboxPrefix(service)),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// A broker that stopped answering (frozen, partitioned away) is
		// left within about 6 s, not nats.go's default 4 minutes.
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrl()) }),
		// Permission violations and slow-consumer notices arrive here; the
		// outbound pipeline chains its own handler in front (it answers a
		// refused call at once).
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("NATS error", "subject", sub.Subject, "err", err)
			} else {
				log.Warn("NATS error", "err", err)
			}
		}),
	}
	if cfg.Creds != "" {
		if _, err := os.Stat(cfg.Creds); err != nil {
			return nil, configErrorf("credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, configErrorf("NKey seed %s: %w", cfg.NKey, err)
		}
		opts = append(opts, opt)
	}
	if cfg.TLSCA != "" {
		if _, err := os.Stat(cfg.TLSCA); err != nil {
			return nil, configErrorf("TLS CA: %w", err)
		}
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	return append(append(opts, cfg.Options...), batchDial), nil
}

// batchDial makes a burst of messages leave in one write (package
// batchconn). Applied after Config.Options, it keeps what those set: the
// dial bounded by nats.Timeout and made by nats.Dialer's net.Dialer with
// nats.MultipathTCP's setting, each write bounded as nats.FlusherTimeout
// bounds nats.go's own, and a nats.SetCustomDialer's dialer in its place.
// nats.go gives a custom dialer each address of a server's name with the
// whole timeout, its own a share of it: unless nats.SkipHostLookup is
// set, the batchconn dialer is given the name, and looks it up and
// shares the timeout as nats.go would.
func batchDial(o *nats.Options) error {
	if o.CustomDialer != nil {
		return nil
	}
	var nd net.Dialer
	if o.Dialer != nil {
		nd = *o.Dialer
	}
	if o.AllowMultipathTCP != nil {
		nd.SetMultipathTCP(*o.AllowMultipathTCP)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = nats.DefaultTimeout // as nats.Connect makes it
	}
	d := batchconn.Dialer{Timeout: timeout, WriteTimeout: o.FlusherTimeout, Net: &nd}
	if !o.SkipHostLookup {
		o.SkipHostLookup = true
		d.Resolve, d.InOrder = true, o.NoRandomize
	}
	o.CustomDialer = d
	return nil
}

func (cfg Config) logger() *slog.Logger {
	if cfg.Logger == nil {
		return slog.Default()
	}
	return cfg.Logger
}

// Connect dials NATS for service, with replies delivered under the
// service's inbox prefix ([wire.InboxPrefix]), the one the mesh's
// permissions let only that service read. It waits for the first
// connection (retrying until cfg.Timeout or ctx ends; then it returns
// ctx.Err()) and fails at once on credentials the server refuses.
func Connect(ctx context.Context, service string, cfg Config) (*nats.Conn, error) {
	opts, err := cfg.options(service)
	if err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		cfg.URL = nats.DefaultURL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	log := cfg.logger()
	log.Info("connecting to NATS", "url", cfg.URL, "timeout", cfg.Timeout)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %v", cfg.URL, err)
	}
	start := time.Now()
	deadline := start.Add(cfg.Timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	nextLog := start.Add(waitLogEvery)
	for !nc.IsConnected() {
		if now := time.Now(); now.After(nextLog) {
			// Said while it retries, not only when it gives up.
			nextLog = now.Add(waitLogEvery)
			reason := "no server answered yet"
			if err := nc.LastError(); err != nil {
				reason = err.Error()
			}
			log.Warn("still connecting to NATS", "url", cfg.URL, "waited", now.Sub(start).Round(time.Millisecond), "reason", reason,
				"gives up in", time.Until(deadline).Round(time.Second))
		}
		if err := nc.LastError(); err != nil && isAuthError(err) {
			nc.Close()
			return nil, fmt.Errorf("NATS at %s refused the credentials: %v", cfg.URL, err)
		}
		if time.Now().After(deadline) {
			err := nc.LastError()
			nc.Close()
			if err == nil {
				err = errors.New("no server answered")
			}
			return nil, fmt.Errorf("no NATS connection to %s after %v: %v", cfg.URL, cfg.Timeout, err)
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	return nc, nil
}

// waitLogEvery is how often Connect says it is still waiting.
const waitLogEvery = 2 * time.Second

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

// CheckInboxPrefix refuses a connection whose replies would not arrive
// under service's inbox prefix: with the mesh's permissions its requests
// would never get an answer, and without them anyone could read its
// replies. The error is a [*ConfigError].
func CheckInboxPrefix(nc *nats.Conn, service string) error {
	if want := wire.InboxPrefix(service); nc.Opts.InboxPrefix != want {
		return configErrorf("the NATS connection's inbox prefix is %q, not %q: connect with agent.Connect (a bridge.Edge connects so itself), or nats.CustomInboxPrefix(wire.InboxPrefix(%q))",
			nc.Opts.InboxPrefix, want, service)
	}
	return nil
}

// Close ends a connection its owner opened once the owner is done with it:
// it drains it (the last replies and publications still in its buffer go
// out; the server is told of the unsubscriptions) and waits, at most until
// ctx ends, for it to close. A connection without a server (reconnecting)
// has nothing to drain and is closed at once. It returns ctx's error when
// the drain did not finish, and is safe on a closed connection.
func Close(ctx context.Context, nc *nats.Conn) error {
	defer nc.Close()
	if !nc.IsConnected() {
		return nil
	}
	if err := nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) {
			return nil
		}
		return err
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsClosed() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining the NATS connection: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
