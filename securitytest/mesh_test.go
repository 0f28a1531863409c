package securitytest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/examples/shop"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of the tests' own HTTP clients.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// Subjects of the policy store the attacks aim at.
const (
	bucketStream = "KV_" + accounts.PoliciesBucket
	kvMesh       = "$KV." + accounts.PoliciesBucket + ".mesh"
	purge        = "$JS.API.STREAM.PURGE." + bucketStream
	consumerAPI  = "$JS.API.CONSUMER.CREATE." + bucketStream
)

// directGet is the store's direct get of key, which every service may ask.
func directGet(key string) string {
	return "$JS.API.DIRECT.GET." + bucketStream + ".$KV." + accounts.PoliciesBucket + "." + key
}

// mode is one way of generating the accounts.
type mode struct {
	name string
	opts []accounts.Option
}

var modes = []mode{
	{"server config", nil},
	{"operator", []accounts.Option{accounts.WithOperator()}},
}

// eachMode runs f once per account mode, as a subtest.
func eachMode(t *testing.T, f func(t *testing.T, md mode)) {
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) { f(t, md) })
	}
}

// quiet discards logs.
var quiet = slog.New(slog.DiscardHandler)

// shopFile is examples/shop/mesh.yaml.
func shopFile(t testing.TB) *policies.File {
	t.Helper()
	f, err := shop.MeshFile()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// parseFile parses a mesh file given as YAML.
func parseFile(t testing.TB, src string) *policies.File {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// mesh is a broker running the configuration generated from a mesh file,
// in one account mode.
type mesh struct {
	md  mode
	dir string
	b   *broker.Broker
}

// newMesh generates the accounts of f in mode md and runs a broker on them.
func newMesh(t testing.TB, md mode, f *policies.File, opts ...func(*broker.Config)) *mesh {
	t.Helper()
	m := &mesh{md: md, dir: t.TempDir()}
	if err := accounts.Generate(f.AccountsSpec(), m.dir, md.opts...); err != nil {
		t.Fatal(err)
	}
	m.b = m.broker(t, opts...)
	return m
}

// broker starts another broker on the mesh's configuration.
func (m *mesh) broker(t testing.TB, opts ...func(*broker.Config)) *broker.Broker {
	t.Helper()
	return meshtest.Broker(t, append([]func(*broker.Config){func(c *broker.Config) {
		c.ConfigFile = accounts.ConfigFile(m.dir)
		c.LameDuckDuration = -1
	}}, opts...)...)
}

// operator reports whether the mesh runs in operator mode.
func (m *mesh) operator() bool { return len(m.md.opts) > 0 }

// auth is the nats.go option that authenticates as user.
func (m *mesh) auth(t testing.TB, user string) nats.Option {
	t.Helper()
	if m.operator() {
		return nats.UserCredentials(accounts.CredsFile(m.dir, user))
	}
	o, err := nats.NkeyOptionFromSeed(accounts.SeedFile(m.dir, user))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// connectConfig is how an agent or gateway connects as user.
func (m *mesh) connectConfig(user string) agent.ConnectConfig {
	cc := agent.ConnectConfig{URL: m.b.ClientURL(), Timeout: 5 * time.Second, Logger: quiet}
	if m.operator() {
		cc.Creds = accounts.CredsFile(m.dir, user)
	} else {
		cc.NKey = accounts.SeedFile(m.dir, user)
	}
	return cc
}

// client is a TCP connection of one mesh user, with the errors the broker
// sent it asynchronously (permissions violations).
type client struct {
	*nats.Conn
	user string
	mu   sync.Mutex
	errs []error
	// taken counts, by subject, the violations waitViolation has taken.
	taken map[string]int
}

// connect connects to the mesh's broker over TCP as user, with the user's
// mesh inbox prefix, without reconnecting.
func (m *mesh) connect(t testing.TB, user string, opts ...nats.Option) *client {
	t.Helper()
	c, err := m.dial(user, append([]nats.Option{m.auth(t, user)}, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(c.Close)
	return c
}

func (m *mesh) dial(user string, opts ...nats.Option) (*client, error) {
	c := &client{user: user, taken: map[string]int{}}
	all := []nats.Option{
		nats.Name("securitytest:" + user),
		nats.CustomInboxPrefix(wire.InboxPrefix(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.record(err) }),
		nats.NoReconnect(),
	}
	nc, err := nats.Connect(m.b.ClientURL(), append(all, opts...)...)
	if err != nil {
		return nil, err
	}
	c.Conn = nc
	return c, nil
}

func (c *client) record(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

func (c *client) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// violations counts the permissions violations the broker has reported
// to c that name subject.
func (c *client) violations(subject string) int {
	n := 0
	for _, err := range c.errors() {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
			n++
		}
	}
	return n
}

// violationsUnder counts the permissions violations the broker has
// reported to c for publishes to subjects under prefix.
func (c *client) violationsUnder(prefix string) int {
	n := 0
	for _, err := range c.errors() {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `Publish to "`+prefix) {
			n++
		}
	}
	return n
}

// waitFor waits up to 5s for cond.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	meshtest.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet: " + what)
	})
}

// waitViolation waits until the broker has refused subject to c once more
// than the violations of subject that earlier calls took.
func (c *client) waitViolation(t testing.TB, subject string) {
	t.Helper()
	c.mu.Lock()
	want := c.taken[subject] + 1
	c.taken[subject] = want
	c.mu.Unlock()
	meshtest.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		if c.violations(subject) >= want {
			return nil
		}
		return fmt.Errorf("%s: no (new) permissions violation for %q yet; errors: %v", c.user, subject, c.errors())
	})
}

// noViolations flushes c and fails if the broker has ever refused it
// anything. (The broker's -ERR comes before the flush's PONG, and nats.go
// notes it as the connection's last error before it reads the PONG; the
// error handler runs later.)
func (c *client) noViolations(t testing.TB) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.LastError(); err != nil {
		t.Fatalf("%s: unexpected error: %v", c.user, err)
	}
	if errs := c.errors(); len(errs) > 0 {
		t.Fatalf("%s: unexpected errors: %v", c.user, errs)
	}
}

// next returns the next message of sub, failing after 5s.
func next(t testing.TB, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v", sub.Subject, err)
	}
	return m
}

// store is the policy store as the admin sees it.
type store struct {
	*live.Store
	js jetstream.JetStream
}

// store opens the policy store as the admin, creating the bucket.
func (m *mesh) store(t testing.TB) *store {
	t.Helper()
	admin := m.connect(t, accounts.DefaultAdmin)
	js, err := jetstream.New(admin.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := live.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return &store{Store: s, js: js}
}

func (s *store) apply(t testing.TB, f *policies.File) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rev, err := s.Apply(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// state is the bucket's stream state.
func (s *store) state(t testing.TB) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, bucketStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// intact fails unless the bucket holds exactly revision rev, as its only
// message, and has no consumer.
func (s *store) intact(t testing.TB, rev uint64) {
	t.Helper()
	st := s.state(t)
	if st.Msgs != 1 || st.LastSeq != rev || st.Consumers != 0 {
		t.Fatalf("the bucket: %d messages, last %d, %d consumers; want 1, %d, 0", st.Msgs, st.LastSeq, st.Consumers, rev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := s.js.StreamNames(ctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	if len(all) != 1 || all[0] != bucketStream {
		t.Fatalf("streams of the store account: %v, want only %s", all, bucketStream)
	}
}

// delivered is how many messages the broker has delivered to the
// connection named name (one only).
func (m *mesh) delivered(t testing.TB, name string) uint64 {
	t.Helper()
	cz, err := m.b.Server().Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	found := 0
	for _, c := range cz.Conns {
		if c.Name == name {
			n, found = uint64(c.OutMsgs), found+1
		}
	}
	if found != 1 {
		t.Fatalf("%d connections named %s", found, name)
	}
	return n
}

// runningShop is the demo shop (package examples/shop) on a mesh: every
// part connected over TCP with its own generated key, the mesh file in
// the bucket, watched as the demo watches it (as the admin).
type runningShop struct {
	*shop.Mesh
	st  *store
	rev uint64

	mu    sync.Mutex
	conns map[string][]*client // by user: the connections the shop opened
}

// startShop runs the shop on m with the shop's mesh file applied.
func (m *mesh) startShop(t *testing.T) *runningShop {
	t.Helper()
	f := shopFile(t)
	s := &runningShop{st: m.store(t), conns: map[string][]*client{}}
	s.rev = s.st.apply(t, f)
	admin := m.connect(t, accounts.DefaultAdmin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := live.WatchKV(ctx, admin.Conn, live.SourceConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	s.Mesh, err = shop.Start(shop.Config{
		Policies: src,
		Gateway:  "127.0.0.1:0",
		Proxy:    "127.0.0.1:0",
		Logger:   quiet,
		Connect: func(service string) (*nats.Conn, error) {
			c, err := m.dial(service, m.auth(t, service))
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.conns[service] = append(s.conns[service], c)
			s.mu.Unlock()
			return c.Conn, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// of returns the connections the shop opened as user.
func (s *runningShop) of(user string) []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[user]
}

// call sends a mesh call of caller to service over c (caller's key) with
// a reply subject in the pair inbox of caller and service, as an agent
// does, and returns the reply.
func call(t testing.TB, c *client, service, method, path string, body []byte) *nats.Msg {
	t.Helper()
	reply := wire.PairInbox(c.user, service) + "." + nats.NewInbox()[len("_INBOX."):]
	sub, err := c.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	subject := wire.Subject{Service: service, Caller: c.user, Proto: wire.ProtoHTTP, Op: method}.String()
	m := &nats.Msg{Subject: subject, Reply: reply, Data: body,
		Header: nats.Header{wire.HeaderMethod: {method}, wire.HeaderPath: {path}}}
	if err := c.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	return next(t, sub)
}
