package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/userdir"
)

// Broker is one embedded nats-server. Create it with New.
type Broker struct {
	opts    *server.Options
	srv     *server.Server
	tmpDir  string // JetStream store (or system user seed) directory we created, removed on Shutdown
	sysSeed string
	log     *slog.Logger
	noAuth  bool // anonymous clients are served: warn on Start
	done    chan struct{}

	mu       sync.Mutex
	started  bool
	stopping bool
	startErr error
	fatal    error // first Fatalf the server logged
	// noLameDuck: Config.LameDuckDuration was negative. It cannot be read
	// back from opts, where nats-server fills in its own 2 min default.
	noLameDuck bool

	stopOnce sync.Once
}

// New validates cfg and creates the server without starting it. Errors wrap
// ErrConfig.
func New(cfg Config) (*Broker, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	b := &Broker{opts: opts, done: make(chan struct{}), noLameDuck: cfg.LameDuckDuration < 0}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.JetStream && opts.StoreDir == "" && cfg.PersistentStore {
		dir, err := DataDir(opts.ServerName, opts.Port)
		switch {
		case errors.Is(err, errNoIdentity):
			log.Warn("broker: a broker with a random client port and no server name has no store directory it could find again: " +
				"JetStream is kept in a temporary directory, removed at shutdown; give it a name, a fixed port or a store directory")
		case err != nil:
			return nil, configErr("persistent store: %v", err)
		default:
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("broker: jetstream store: %w", err)
			}
			opts.StoreDir = dir
		}
	}
	addSys := cfg.ConfigFile == "" && !hasAuth(opts) && opts.SystemAccount == ""
	if (opts.JetStream || (addSys && cfg.SystemUserSeed == "")) && opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "natsmesh-broker-")
		if err != nil {
			return nil, fmt.Errorf("broker: jetstream store: %w", err)
		}
		b.tmpDir = dir
		if opts.JetStream {
			opts.StoreDir = dir
		}
	}
	if addSys {
		seed := cfg.SystemUserSeed
		if seed == "" {
			seed = filepath.Join(cmp.Or(opts.StoreDir, b.tmpDir), "sys.nk")
		}
		if err := addSystemUser(opts, seed); err != nil {
			if b.tmpDir != "" {
				os.RemoveAll(b.tmpDir)
			}
			return nil, err
		}
		b.sysSeed = seed
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		if b.tmpDir != "" {
			os.RemoveAll(b.tmpDir)
		}
		return nil, configErr("%v", err)
	}
	ctx := context.Background()
	srv.SetLoggerV2(&logAdapter{log: log, fatal: b.setFatal},
		log.Enabled(ctx, slog.LevelDebug), log.Enabled(ctx, LevelTrace), false)
	b.srv = srv
	b.log = log
	b.noAuth = !hasAuth(opts) || opts.NoAuthUser != "" || b.sysSeed != ""
	return b, nil
}

// errNoIdentity is DataDir's error for a broker it cannot name.
var errNoIdentity = errors.New("a broker with a random client port and no server name has no data directory of its own")

// DataDir is the per-user data directory of the broker with this server
// name and client port (see Config.PersistentStore):
// $XDG_DATA_HOME/natsmesh/broker/<name>, or .../port-<port> without a
// name; ~/.local/share/natsmesh/broker/... without XDG_DATA_HOME. Bytes of
// the name outside [A-Za-z0-9._-] become '_'. A broker with neither a name
// nor a fixed port (port 0 or -1: random) has none.
func DataDir(serverName string, port int) (string, error) {
	id := sanitizeName(serverName)
	if id == "" {
		if port <= 0 {
			return "", errNoIdentity
		}
		id = "port-" + strconv.Itoa(port)
	}
	return userdir.Data("broker", id)
}

func sanitizeName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if s := string(b); s != "." && s != ".." {
		return s
	}
	return "_"
}

// SystemUserSeed is the NKey seed file of the system account user the
// broker created (see Config.SystemUserSeed), or "" when it created none
// because a config file or options define the accounts.
func (b *Broker) SystemUserSeed() string { return b.sysSeed }

// Start starts the server and returns without waiting for it to accept
// connections; call Ready for that. A listener that cannot bind is reported
// here when it can be detected up front, otherwise by Ready. Start after
// Shutdown is an error; a second Start returns the first one's result.
func (b *Broker) Start() error {
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		return errors.New("broker: start after shutdown")
	}
	if b.started {
		defer b.mu.Unlock()
		return b.startErr
	}
	b.started = true
	if err := b.probe(); err != nil {
		b.startErr = err
		b.mu.Unlock()
		return err
	}
	b.mu.Unlock()

	b.srv.Start()
	if err := b.fatalErr(); err != nil {
		b.srv.Shutdown()
		b.mu.Lock()
		b.startErr = err
		b.mu.Unlock()
		return err
	}
	if b.noAuth {
		b.log.Warn("broker: clients connect without authentication: any client may call any service as any caller " +
			"and subscribe to every call and reply (mesh.>, _INBOX_mesh.>); " +
			"run with --nats-config from natsmesh accounts generate for an authenticated mesh")
	}
	return nil
}

// probe binds each fixed port once, so that "address already in use" comes
// back from Start as a clear error instead of a Fatalf deep in nats-server.
// It cannot close the race with another process binding the port in
// between; the Fatalf hook still catches that case.
func (b *Broker) probe() error {
	o := b.opts
	for _, a := range []struct {
		host string
		port int
	}{
		{o.Host, o.Port},
		{o.HTTPHost, o.HTTPPort},
		{o.HTTPHost, o.HTTPSPort},
		{o.Cluster.Host, o.Cluster.Port},
		{o.LeafNode.Host, o.LeafNode.Port},
	} {
		if a.port <= 0 || (o.DontListen && a.port == o.Port) {
			continue
		}
		addr := net.JoinHostPort(a.host, strconv.Itoa(a.port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return listenErr(addr, err)
		}
		l.Close()
	}
	return nil
}

// Ready waits up to timeout until the server accepts client connections
// (and its route and leaf node listeners are up). It fails early if the
// server reported a fatal error such as a listener that could not bind.
func (b *Broker) Ready(timeout time.Duration) error {
	b.mu.Lock()
	started, startErr := b.started, b.startErr
	b.mu.Unlock()
	if !started {
		return errors.New("broker: not started")
	}
	if startErr != nil {
		return startErr
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := b.fatalErr(); err != nil {
			return err
		}
		// Check in short slices so a fatal error ends the wait early.
		if b.srv.ReadyForConnections(min(time.Until(deadline), 50*time.Millisecond)) {
			return nil
		}
		if time.Now().After(deadline) {
			if err := b.fatalErr(); err != nil {
				return err
			}
			return fmt.Errorf("broker: not ready for connections after %s", timeout)
		}
	}
}

// ClientURL is the URL clients connect to, such as "nats://127.0.0.1:4222",
// with the actual port once the server listens.
func (b *Broker) ClientURL() string { return b.srv.ClientURL() }

// ClusterURL is the URL other servers route to, or "" without clustering
// or before the route listener is up.
func (b *Broker) ClusterURL() string {
	a := b.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// LeafNodeURL is the URL leaf nodes connect to, or "" when the server
// accepts no leaf nodes or before it listens.
func (b *Broker) LeafNodeURL() string {
	v, err := b.srv.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	return "nats://" + net.JoinHostPort(v.LeafNode.Host, strconv.Itoa(v.LeafNode.Port))
}

// Server returns the embedded nats-server for what Broker does not wrap:
// monitoring (Varz, Connz), NumRoutes, account management.
func (b *Broker) Server() *server.Server { return b.srv }

// InProcessConn connects to the broker through an in-memory pipe, without
// TCP. opts are applied after the in-process option.
func (b *Broker) InProcessConn(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(b.srv)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("broker: in-process connection: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server. It first enters lame-duck mode: the client
// listener closes, JetStream stops, and connected clients are closed one by
// one over Config.LameDuckDuration so they can reconnect elsewhere. With
// no clients connected it proceeds at once. If ctx ends first, the remaining
// connections are closed immediately; Shutdown still waits for the server to
// stop and then returns ctx's error.
//
// Shutdown is safe to call more than once and concurrently; every call waits
// for the same shutdown. Calling it before Start releases resources.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.stopping = true
		lameDuck := b.started && !b.noLameDuck
		ran := b.started && b.startErr == nil
		b.mu.Unlock()
		if !ran {
			// The server never ran: its "Initiating Shutdown" notices
			// would only bury the error that stopped it.
			b.srv.SetLoggerV2(nil, false, false, false)
		}
		go func() {
			defer close(b.done)
			if lameDuck {
				// Returns early when there are no clients, or when
				// Shutdown below is called because ctx ended.
				b.srv.LameDuckShutdown()
			}
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
			if b.tmpDir != "" {
				os.RemoveAll(b.tmpDir)
			}
		}()
	})
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.srv.Shutdown()
		<-b.done
		return fmt.Errorf("broker: shutdown: %w", ctx.Err())
	}
}

func (b *Broker) setFatal(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fatal == nil {
		b.fatal = err
	}
}

func (b *Broker) fatalErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fatal
}

// listenErr turns a net.Listen error into "broker: listen ADDR: REASON",
// keeping the system error (such as syscall.EADDRINUSE) for errors.Is.
func listenErr(addr string, err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	} else if oe := (*net.OpError)(nil); errors.As(err, &oe) {
		err = oe.Err
	}
	return fmt.Errorf("broker: listen %s: %w", addr, err)
}
