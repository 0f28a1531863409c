package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrConfig is wrapped by every error New returns for an invalid Config, so
// callers can tell a configuration mistake from a runtime failure with
// errors.Is.
var ErrConfig = errors.New("broker: invalid configuration")

// Default values used when the corresponding Config field is zero.
const (
	DefaultListen           = "127.0.0.1:4222"
	DefaultHTTP             = "127.0.0.1:8222"
	DefaultLameDuckDuration = 2 * time.Second
	// DefaultClusterName is used when cluster routing is configured without a
	// name, so that servers started with the same flags agree on one.
	DefaultClusterName = "natsmesh"
	// HTTPOff disables the monitoring endpoint when set as Config.HTTP.
	HTTPOff = "off"
)

// Config describes one embedded nats-server. The zero value runs a
// single server on 127.0.0.1:4222 with monitoring on 127.0.0.1:8222 and
// JetStream stored in a temporary directory (PersistentStore keeps it in a
// per-user directory instead, as `natsmesh broker` does).
//
// When ConfigFile is set, the file is loaded first (as a stock nats-server
// would) and every non-zero field here is applied on top of it; a zero field
// keeps the file's setting and falls back to the default below only when the
// file does not set it either.
type Config struct {
	// Listen is the client listener as "host:port". Default "127.0.0.1:4222".
	// An empty host means 127.0.0.1 (never all interfaces unless asked for
	// with "0.0.0.0"); port 0 or -1 picks a free port, see Broker.ClientURL.
	Listen string

	// HTTP is the monitoring listener (/varz, /healthz, ...) as "host:port".
	// Default "127.0.0.1:8222"; port 0 or -1 picks a free port; "off" disables it.
	HTTP string

	// ConfigFile is a stock nats-server configuration file loaded before the
	// other fields are applied. Default: none.
	ConfigFile string

	// StoreDir is the JetStream store directory. Default: a new temporary
	// directory, removed by Shutdown, unless PersistentStore is set. A
	// directory given here is never removed.
	StoreDir string

	// PersistentStore, when neither StoreDir nor a ConfigFile names a store
	// directory, keeps JetStream (the mesh file's bucket among it) in this
	// broker's own per-user data directory, DataDir(ServerName, client
	// port), created 0700 if missing and never removed, so that the store
	// survives a restart: $XDG_DATA_HOME/natsmesh/broker/<name or
	// port-N>, or ~/.local/share/natsmesh/broker/... Brokers on one
	// machine with different server names or ports (a cluster's servers)
	// get different directories. A broker with neither a server name nor
	// a fixed client port has no directory it could find again: it keeps
	// a temporary one, and logs a warning.
	PersistentStore bool

	// NoJetStream disables JetStream, which is on by default. With a
	// ConfigFile, the file decides and NoJetStream can only turn it off.
	NoJetStream bool

	// SyncInterval is how often JetStream fsyncs its file store. Default
	// (0): after every write, as nats-server's "sync_interval: always", so
	// an acknowledged write survives a crash of the machine; the mesh's
	// policies bucket depends on it (docs/decisions.md). A positive value
	// syncs in the background at that interval instead (nats-server's own
	// default is 2 min). With a ConfigFile that sets sync_interval, the
	// file's setting stands unless this field is set.
	SyncInterval time.Duration

	// ServerName names the server in monitoring and cluster views.
	// Default: nats-server generates one from the server ID.
	ServerName string

	// MaxPayload is the largest message payload in bytes the server accepts.
	// Default: nats-server's default (1 MiB).
	MaxPayload int32

	// Cluster configures routes to other servers of the same cluster.
	// Default: no clustering.
	Cluster Cluster

	// LeafNodes configures leaf node connections. Default: none.
	LeafNodes LeafNodes

	// TLS secures client connections. Default: plain TCP.
	TLS TLS

	// LameDuckDuration bounds how long Shutdown spends closing client
	// connections gradually (lame-duck mode) before it stops the server.
	// With no clients connected Shutdown does not wait at all. Default 2s
	// (with a ConfigFile, the file's lame_duck_duration if it sets one); a
	// negative value skips lame-duck mode and closes everything at once.
	LameDuckDuration time.Duration

	// SystemUserSeed is the NKey seed file of the system account's user,
	// for `nats server` commands: nats --nkey FILE server list. Without a
	// ConfigFile the broker creates the system account ($SYS) with this one
	// user, reading the seed from the file or creating it (mode 0600) when
	// missing; anonymous clients keep connecting to the default account.
	// Default: sys.nk in the JetStream store directory (StoreDir, or the
	// temporary one, so a new key every run). Ignored with a ConfigFile,
	// which defines its own accounts.
	SystemUserSeed string

	// Logger receives the server's log. nats-server's Notice maps to Info,
	// Warn to Warn, Error and Fatal to Error, Debug to Debug and Trace to
	// LevelTrace. Debug and trace logging are only enabled when the
	// handler enables those levels. Default: discard everything, as a library
	// should be quiet unless asked.
	Logger *slog.Logger

	// Options, if set, is called last with the server options built from
	// this Config: an escape hatch for settings Config does not name.
	Options func(*server.Options)
}

// Cluster configures NATS routes between servers of one cluster.
type Cluster struct {
	// Name is the cluster name; every server in a cluster must use the same.
	// Default "natsmesh" when Listen is set.
	Name string
	// Listen is the route listener as "host:port"; port 0 or -1 picks a
	// free port, see Broker.ClusterURL. Empty disables clustering.
	Listen string
	// Routes are the URLs (nats://host:port) of other servers' route
	// listeners. Each entry may itself be a comma-separated list.
	Routes []string
	// TLS secures routes, in both directions and always mutually: each
	// server presents CertFile and verifies its peer's certificate
	// against CAFile (the system's roots without one). Default: Config.TLS
	// when that has a certificate, else the config file's cluster TLS,
	// else its client TLS, else plain TCP.
	TLS TLS
}

// LeafNodes configures NATS leaf node connections.
type LeafNodes struct {
	// Listen is the listener that accepts leaf node connections as
	// "host:port"; port 0 or -1 picks a free port, see Broker.LeafNodeURL.
	// Empty means this server accepts no leaf nodes.
	Listen string
	// Remotes are URLs (nats://host:port) of hub servers' leaf node
	// listeners this server connects to as a leaf. Each entry may itself be
	// a comma-separated list.
	Remotes []string
	// TLS secures leaf node connections: the listener presents CertFile
	// and, with CAFile, requires and verifies the leaf's certificate; a
	// remote verifies the hub against CAFile (the system's roots without
	// one) and presents CertFile as its client certificate. Default:
	// Config.TLS when that has a certificate, else the config file's
	// leafnodes TLS, else its client TLS, else plain TCP.
	TLS TLS
}

// TLS names the PEM files that secure one kind of connection. Servers
// always verify the certificates they are shown; client certificates
// (mutual TLS) are required where CAFile is set.
type TLS struct {
	// CertFile and KeyFile are the server certificate and its key; both or
	// neither must be set.
	CertFile string
	KeyFile  string
	// CAFile, if set, makes the server require and verify client
	// certificates signed by this CA (mutual TLS), and is the CA that
	// peers' certificates are verified against on routes and leaf nodes.
	CAFile string
}

func (t TLS) isZero() bool { return t == TLS{} }

// config returns the tls.Config of t for a listener that requires and
// verifies client certificates when mutual, and that verifies servers
// against CAFile when it dials (routes, leaf remotes).
func (t TLS) config(what string, mutual bool) (*tls.Config, error) {
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, configErr("%s: both a certificate and a key file are needed", what)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: t.CertFile,
		KeyFile:  t.KeyFile,
		CaFile:   t.CAFile,
		Verify:   mutual,
	})
	if err != nil {
		return nil, configErr("%s: %v", what, err)
	}
	// GenTLSConfig loads the CA as ClientCAs only; dialing verifies the
	// peer against RootCAs (as nats-server's own cluster parsing does).
	tc.RootCAs = tc.ClientCAs
	return tc, nil
}

// The broker's pings of its clients, when its configuration file sets
// none: a client that answers none of DefaultMaxPingsOut pings sent
// DefaultPingInterval apart is dropped, and with it its subscriptions
// and queue group memberships.
const (
	DefaultPingInterval = 2 * time.Second
	DefaultMaxPingsOut  = 2
)

// LevelTrace is the slog level nats-server's Tracef messages are logged at.
const LevelTrace = slog.LevelDebug - 4

// options turns cfg into nats-server options. The JetStream store directory
// stays empty when neither cfg nor the config file names one; New then
// creates a temporary directory.
func (cfg Config) options() (*server.Options, error) {
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		fo, err := server.ProcessConfigFile(cfg.ConfigFile)
		if err != nil {
			return nil, configErr("config file %s: %v", cfg.ConfigFile, err)
		}
		opts = fo
	}
	// nats-server calls os.Exit on SIGTERM unless told otherwise; the
	// process that embeds us owns signals.
	opts.NoSigs = true

	switch {
	case cfg.Listen != "":
		h, p, err := hostPort(cfg.Listen)
		if err != nil {
			return nil, configErr("listen: %v", err)
		}
		opts.Host, opts.Port = h, p
	case cfg.ConfigFile == "" || opts.Port == 0:
		opts.Port = 4222
	}
	if opts.Host == "" {
		// nats-server's default host is 0.0.0.0; a mesh broker is local
		// unless configured otherwise.
		opts.Host = "127.0.0.1"
	}

	switch {
	case strings.EqualFold(cfg.HTTP, HTTPOff):
		opts.HTTPHost, opts.HTTPPort, opts.HTTPSPort = "", 0, 0
	case cfg.HTTP != "":
		h, p, err := hostPort(cfg.HTTP)
		if err != nil {
			return nil, configErr("http: %v", err)
		}
		opts.HTTPHost, opts.HTTPPort = h, p
	case opts.HTTPPort == 0 && opts.HTTPSPort == 0:
		opts.HTTPHost, opts.HTTPPort = "127.0.0.1", 8222
	}
	if opts.HTTPHost == "" && (opts.HTTPPort != 0 || opts.HTTPSPort != 0) {
		opts.HTTPHost = "127.0.0.1"
	}

	if opts.PingInterval == 0 {
		// nats-server pings a client every 2 minutes and drops it after
		// two unanswered: a frozen agent (SIGSTOP, a stalled VM) would
		// keep its share of a queue group's calls for minutes. Every
		// 2 s, it loses it within about 6 s (issue 21).
		opts.PingInterval, opts.MaxPingsOut = DefaultPingInterval, DefaultMaxPingsOut
	}
	if cfg.ServerName != "" {
		opts.ServerName = cfg.ServerName
	}
	if cfg.MaxPayload < 0 {
		return nil, configErr("max payload %d: must not be negative", cfg.MaxPayload)
	}
	if cfg.MaxPayload > 0 {
		opts.MaxPayload = cfg.MaxPayload
	}

	switch {
	case cfg.NoJetStream:
		opts.JetStream = false
	case cfg.ConfigFile == "":
		opts.JetStream = true
	}
	if cfg.StoreDir != "" {
		opts.StoreDir = cfg.StoreDir
	}
	switch {
	case cfg.SyncInterval < 0:
		return nil, configErr("sync interval %s: must not be negative", cfg.SyncInterval)
	case cfg.SyncInterval > 0:
		opts.SyncInterval, opts.SyncAlways = cfg.SyncInterval, false
	case cfg.ConfigFile == "" || (opts.SyncInterval == 0 && !opts.SyncAlways):
		// JetStream has no per-stream fsync setting (a stream's
		// persist_mode can only relax it to async), so the whole server
		// syncs every write.
		opts.SyncAlways = true
	}

	if c := cfg.Cluster; c.Listen != "" || len(c.Routes) > 0 || c.Name != "" {
		if c.Listen != "" {
			h, p, err := hostPort(c.Listen)
			if err != nil {
				return nil, configErr("cluster listen: %v", err)
			}
			opts.Cluster.Host, opts.Cluster.Port = h, p
		}
		if opts.Cluster.Port == 0 {
			return nil, configErr("cluster: routes and name need a cluster listen address")
		}
		if c.Name != "" {
			opts.Cluster.Name = c.Name
		}
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = DefaultClusterName
		}
		routes, err := urls(c.Routes, "nats", "nats-route", "tls")
		if err != nil {
			return nil, configErr("cluster routes: %v", err)
		}
		if len(routes) > 0 {
			opts.Routes = routes
		}
	}
	if opts.Cluster.Port != 0 && opts.Cluster.Host == "" {
		opts.Cluster.Host = "127.0.0.1"
	}

	if l := cfg.LeafNodes; l.Listen != "" {
		h, p, err := hostPort(l.Listen)
		if err != nil {
			return nil, configErr("leafnodes listen: %v", err)
		}
		opts.LeafNode.Host, opts.LeafNode.Port = h, p
	}
	if opts.LeafNode.Port != 0 && opts.LeafNode.Host == "" {
		opts.LeafNode.Host = "127.0.0.1"
	}
	remotes, err := urls(cfg.LeafNodes.Remotes, "nats", "nats-leaf", "tls", "ws", "wss")
	if err != nil {
		return nil, configErr("leafnode remotes: %v", err)
	}
	if len(remotes) > 0 {
		// The URLs are one hub (a cluster's servers), tried in turn: one
		// remote per URL would open one leaf connection per hub server and
		// deliver every message to plain subscribers twice. Several hubs
		// need a config file.
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: remotes})
	}

	if t := cfg.TLS; !t.isZero() {
		tc, err := t.config("tls", t.CAFile != "")
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
		opts.TLS = true
		opts.TLSVerify = t.CAFile != ""
	}
	if err := cfg.peerTLS(opts); err != nil {
		return nil, err
	}

	// nats-server's defaults (2 min, 10 s grace) suit a server with many
	// clients that must not reconnect in a storm; a mesh broker on a laptop
	// should stop in seconds. The grace period must be strictly shorter than
	// the duration (validateOptions), so take a quarter of it.
	ld := cfg.LameDuckDuration
	if ld == 0 && (cfg.ConfigFile == "" || opts.LameDuckDuration == 0) {
		ld = DefaultLameDuckDuration
	}
	if ld > 0 {
		opts.LameDuckDuration = ld
		opts.LameDuckGracePeriod = max(ld/4, time.Millisecond)
	}

	if cfg.Options != nil {
		cfg.Options(opts)
		opts.NoSigs = true
	}
	return opts, nil
}

// peerTLS secures routes and leaf node connections (see Cluster.TLS and
// LeafNodes.TLS), each defaulting to the client TLS when it has a
// certificate.
func (cfg Config) peerTLS(opts *server.Options) error {
	// fromFile: a config file's own TLS block stands unless the field
	// for it is set.
	pick := func(t TLS, fromFile bool) TLS {
		if t.isZero() && cfg.TLS.CertFile != "" && !fromFile {
			return cfg.TLS
		}
		return t
	}
	if t := pick(cfg.Cluster.TLS, opts.Cluster.TLSConfig != nil); !t.isZero() && opts.Cluster.Port != 0 {
		tc, err := t.config("cluster tls", true)
		if err != nil {
			return err
		}
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = tlsTimeout
	}
	t := pick(cfg.LeafNodes.TLS, false)
	if t.isZero() {
		if cfg.TLS.isZero() && opts.TLSConfig != nil {
			fileTLS(opts)
		}
		return nil
	}
	if opts.LeafNode.Port != 0 && (opts.LeafNode.TLSConfig == nil || !cfg.LeafNodes.TLS.isZero()) {
		tc, err := t.config("leafnodes tls", t.CAFile != "")
		if err != nil {
			return err
		}
		opts.LeafNode.TLSConfig = tc
		opts.LeafNode.TLSTimeout = tlsTimeout
	}
	for _, r := range opts.LeafNode.Remotes {
		if r.TLSConfig != nil {
			continue // the config file's
		}
		tc, err := t.config("leafnode remotes tls", false)
		if err != nil {
			return err
		}
		r.TLS, r.TLSConfig, r.TLSTimeout = true, tc, tlsTimeout
	}
	return nil
}

// fileTLS secures routes and leaf node connections that nothing else
// secures with a copy of the client TLS a config file set (as generated by
// natsmesh accounts generate --tls-cert): routes verify both ways, leaf
// nodes as clients do, remotes verify the hub against its CA.
func fileTLS(opts *server.Options) {
	if opts.Cluster.Port != 0 && opts.Cluster.TLSConfig == nil {
		tc := opts.TLSConfig.Clone()
		tc.ClientAuth, tc.RootCAs = tls.RequireAndVerifyClientCert, tc.ClientCAs
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, tlsTimeout
	}
	if opts.LeafNode.Port != 0 && opts.LeafNode.TLSConfig == nil {
		tc := opts.TLSConfig.Clone()
		tc.RootCAs = tc.ClientCAs
		opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = tc, tlsTimeout
	}
	for _, r := range opts.LeafNode.Remotes {
		if r.TLSConfig == nil {
			tc := opts.TLSConfig.Clone()
			tc.ClientAuth, tc.RootCAs = tls.NoClientCert, tc.ClientCAs
			r.TLS, r.TLSConfig, r.TLSTimeout = true, tc, tlsTimeout
		}
	}
}

// tlsTimeout is the TLS handshake timeout of routes and leaf nodes, in
// seconds (nats-server's default is 2; a loaded machine needs more).
const tlsTimeout = 5

// configErr returns an error reading "broker: <message>" that matches
// ErrConfig with errors.Is, without repeating ErrConfig's text.
func configErr(format string, v ...any) error {
	return &configError{msg: fmt.Sprintf(format, v...)}
}

type configError struct{ msg string }

func (e *configError) Error() string        { return "broker: " + e.msg }
func (e *configError) Is(target error) bool { return target == ErrConfig }

// hostPort splits "host:port". Port 0 and -1 both mean a random port
// (nats-server reads 0 as "default" or "disabled", and -1 as random, but Go
// users expect 0 to mean any free port). An empty host is 127.0.0.1.
func hostPort(s string) (string, int, error) {
	h, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want host:port", s)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < -1 || p > 65535 {
		return "", 0, fmt.Errorf("%q: port must be -1 (random) or 0-65535", s)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return h, p, nil
}

// urls parses each entry (itself possibly a comma-separated list) as a URL
// with one of the given schemes and a host:port.
func urls(list []string, schemes ...string) ([]*url.URL, error) {
	var out []*url.URL
	for _, entry := range list {
		for s := range strings.SplitSeq(entry, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			u, err := url.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", s, err)
			}
			ok := false
			for _, sc := range schemes {
				ok = ok || u.Scheme == sc
			}
			if !ok || u.Host == "" || u.Port() == "" {
				return nil, fmt.Errorf("%q: want %s://host:port", s, schemes[0])
			}
			out = append(out, u)
		}
	}
	return out, nil
}
