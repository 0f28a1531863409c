package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
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

// connect dials NATS as name. It keeps retrying the first connection until
// timeout (so a sidecar may start before its broker) and reconnects forever
// afterwards. inboxPrefix, when set, is where replies come back.
func (f *natsFlags) connect(ctx context.Context, name, inboxPrefix string, log *slog.Logger) (*nats.Conn, error) {
	if f.creds != "" && f.nkey != "" {
		return nil, errors.New("--creds and --nkey are exclusive: pick one way to authenticate")
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrl()) }),
	}
	if inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(inboxPrefix))
	}
	if f.creds != "" {
		opts = append(opts, nats.UserCredentials(f.creds))
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if f.tlsCA != "" {
		if _, err := os.Stat(f.tlsCA); err != nil {
			return nil, fmt.Errorf("--nats-tls-ca: %v", err)
		}
		opts = append(opts, nats.RootCAs(f.tlsCA))
	}
	if f.tlsCert != "" {
		opts = append(opts, nats.ClientCert(f.tlsCert, f.tlsKey))
	}
	if f.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(f.nkey)
		if err != nil {
			return nil, fmt.Errorf("--nkey %s: %v", f.nkey, err)
		}
		opts = append(opts, opt)
	}
	log.Debug("connecting to NATS", "url", f.url)
	nc, err := nats.Connect(f.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %v", f.url, err)
	}
	deadline := time.Now().Add(f.timeout)
	for !nc.IsConnected() {
		if err := nc.LastError(); err != nil && isAuthError(err) {
			nc.Close()
			return nil, fmt.Errorf("NATS at %s refused the credentials: %v", f.url, err)
		}
		if time.Now().After(deadline) {
			err := nc.LastError()
			nc.Close()
			if err == nil {
				err = errors.New("no server answered")
			}
			return nil, fmt.Errorf("no NATS connection to %s after %v: %v", f.url, f.timeout, err)
		}
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nc, nil
}

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}
