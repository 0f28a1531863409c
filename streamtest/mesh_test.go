package streamtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// bin is the natsmesh binary, built once for the package.
var bin string

// TestMain builds natsmesh without the race detector, whatever this test
// binary was built with: the agents and the broker are what these tests
// measure (their memory, how fast they notice a failure), and -race would
// make them several times slower and larger. The test process, service
// and clients, keeps the race detector of `go test -race`.
func TestMain(m *testing.M) {
	if addr := os.Getenv(ledgerServiceEnv); addr != "" {
		// This binary re-executed as a fault suite's service (chaos_test.go).
		os.Exit(serveLedger(addr))
	}
	dir, err := os.MkdirTemp("", "natsmesh-streamtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "natsmesh")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/natsmesh").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	// goleak.VerifyTestMain's check, here because the binary's directory
	// is removed after the run.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// idle is the kill tests' --stream-idle: how long a stream may hear
// nothing from the other side before it fails. Short, to keep them
// short.
const idle = 2 * time.Second

// rssBound is what no agent's peak RSS may reach, whatever a stream's
// length (issue 18: "each agent's peak RSS under 64 MB").
const rssBound = 64 << 20

// proc is a natsmesh process started for a test, killed at its end.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *meshtest.Buffer
	exited chan struct{}
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, nil, exec.Command(bin, args...))
}

// startCmd starts cmd as startProc does, with env added to its
// environment.
func startCmd(t *testing.T, name string, env []string, cmd *exec.Cmd) *proc {
	t.Helper()
	// Each process is configured by its flags alone: a NATSMESH_*
	// variable of the caller's shell must not point one elsewhere.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATSMESH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &proc{name: name, cmd: cmd, out: &meshtest.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// A test binary killed by its timeout takes its processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would,
// and waits for it.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// waitUntil polls ready until it returns nil; the test fails if the
// process exits first or ready still fails after 20s.
func (p *proc) waitUntil(t *testing.T, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited early (%v):\n%s", p.name, p.cmd.ProcessState, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", p.name, err, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resetPeak resets the process's peak RSS to its current RSS (Linux 4.0
// and later); false if the kernel refused, and the peak is then the
// process's lifetime's.
func (p *proc) resetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0) == nil
}

// peakRSS is the process's peak resident set, VmHWM, in bytes.
func (p *proc) peakRSS(t *testing.T) int64 {
	t.Helper()
	hwm, err := procStatus(p, "VmHWM")
	if err != nil {
		t.Fatalf("%s: %v (did it exit?)\n%s", p.name, err, p.out)
	}
	return hwm
}

// freeAddr returns a loopback address with a port free at the time of
// the call.
func freeAddr(t *testing.T) string { return meshtest.FreeAddr(t) }

// mesh is a broker and two agents, each its own process: the callee
// "orders" in front of the test's HTTP service, and the caller "web" with
// its HTTP proxy and a port bound to orders; with a gRPC service, a
// third agent, the callee "ledger" in front of it, and web's gRPC proxy.
type mesh struct {
	broker, callee, caller *proc
	// proxy is web's HTTP proxy, bind its port bound to orders.
	proxy, bind string
	// grpcCallee is ledger's agent, grpcProxy web's gRPC proxy; nil and
	// empty without a gRPC service.
	grpcCallee *proc
	grpcProxy  string
	// natsURL is the broker's client URL.
	natsURL string
}

// agents are the mesh's agents, caller first.
func (m *mesh) agents() []*proc {
	if m.grpcCallee != nil {
		return []*proc{m.caller, m.callee, m.grpcCallee}
	}
	return []*proc{m.caller, m.callee}
}

// meshConfig is what startMesh runs.
type meshConfig struct {
	// upstream is orders's service (an http:// URL).
	upstream string
	// grpcUpstream is ledger's gRPC service (an address); empty: no
	// ledger.
	grpcUpstream string
	// idle is every agent's --stream-idle; zero: its default (10s).
	idle time.Duration
}

// startMesh starts the broker and the agents, and returns once every
// agent is ready.
func startMesh(t *testing.T, cfg meshConfig) *mesh {
	t.Helper()
	m := &mesh{}
	natsAddr := freeAddr(t)
	m.broker = startProc(t, "broker", "broker", "--listen", natsAddr, "--monitor", "off", "--no-jetstream", "--log-level", "warn")
	m.broker.waitUntil(t, func() error {
		c, err := net.DialTimeout("tcp", natsAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	natsURL := "nats://" + natsAddr
	m.natsURL = natsURL
	// The built-in policy (--policy off) and its defaults otherwise, as
	// `natsmesh agent` runs.
	common := []string{"--nats", natsURL, "--policy", "off", "--log-level", "warn"}
	if cfg.idle != 0 {
		common = append(common, "--stream-idle", cfg.idle.String())
	}
	calleeAdmin := freeAddr(t)
	m.callee = startProc(t, "orders's agent", append([]string{"agent", "--service", "orders", "--upstream", cfg.upstream,
		"--proxy", "off", "--grpc-proxy", "off", "--admin", calleeAdmin}, common...)...)
	m.grpcProxy = "off"
	var grpcAdmin string
	if cfg.grpcUpstream != "" {
		grpcAdmin = freeAddr(t)
		m.grpcCallee = startProc(t, "ledger's agent", append([]string{"agent", "--service", "ledger", "--upstream", "h2c://" + cfg.grpcUpstream,
			"--proxy", "off", "--grpc-proxy", "off", "--admin", grpcAdmin}, common...)...)
		m.grpcProxy = freeAddr(t)
	}
	callerAdmin := freeAddr(t)
	m.proxy, m.bind = freeAddr(t), freeAddr(t)
	m.caller = startProc(t, "web's agent", append([]string{"agent", "--service", "web",
		"--proxy", m.proxy, "--bind", "orders=" + m.bind, "--grpc-proxy", m.grpcProxy, "--admin", callerAdmin}, common...)...)
	m.callee.waitUntil(t, ready("http://"+calleeAdmin+"/readyz"))
	m.caller.waitUntil(t, ready("http://"+callerAdmin+"/readyz"))
	if m.grpcCallee != nil {
		m.grpcCallee.waitUntil(t, ready("http://"+grpcAdmin+"/readyz"))
	}
	return m
}

func ready(url string) func() error { return readyIn("", url) }

// readyIn is ready, from the network namespace ns (netns_test.go; the
// test's own if empty).
func readyIn(ns, url string) func() error {
	c := &http.Client{Transport: &http.Transport{DialContext: dialIn(ns), DisableKeepAlives: true}, Timeout: 2 * time.Second}
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// viaProxy is a client of web's HTTP proxy: http://orders/... reaches
// the service.
func (m *mesh) viaProxy(t *testing.T) *http.Client {
	t.Helper()
	u, _ := url.Parse("http://" + m.proxy)
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// plainClient is a client of direct URLs (the service's, a bound port's).
func plainClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// block is the period of every body the tests send: random bytes, of a
// length (1 MiB + 7) that no frame or buffer size divides, so a piece
// lost, repeated or out of order changes the digest.
var block = sync.OnceValue(func() []byte {
	b := make([]byte, 1<<20+7)
	rand.NewChaCha8([32]byte{18}).Read(b)
	return b
})

// body is the first n bytes of block repeated, read by copies (cheap
// under the race detector, unlike generating n random bytes).
type body struct{ off, n int64 }

func newBody(n int64) *body { return &body{n: n} }

func (b *body) Read(p []byte) (int, error) {
	if b.off >= b.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.n-b.off)]
	blk := block()
	k := 0
	for k < len(p) {
		k += copy(p[k:], blk[(b.off+int64(k))%int64(len(blk)):])
	}
	b.off += int64(k)
	return k, nil
}

// digest is the SHA-256 of r's bytes, in hex, and their count.
func digest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(h, r, buf)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// service is the meshed HTTP service, in the test process:
//
//   - /download?n=N writes N bytes of body (with their Content-Length),
//     at most rate bytes/s with &rate=R;
//   - /upload answers the digest and length of what it read;
//   - /slow?n=N writes up to N bytes, counting them in written;
//   - /events sends a server-sent event every 20 ms.
//
// Each handler, once it is done (its client went, a write failed, or,
// for /upload, it has read its body), sends its path and the time on
// ended.
type service struct {
	*httptest.Server
	written atomic.Int64
	ended   chan ending
}

type ending struct {
	path string
	at   time.Time
	// n and err are what an upload's handler read of its body, and how
	// its body ended (nil: the whole body, as its client sent it).
	n   int64
	err error
}

func newService(t *testing.T) *service {
	t.Helper()
	s := &service{ended: make(chan ending, 64)}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
	switch r.URL.Path {
	case "/upload":
		sum, got, err := digest(r.Body)
		s.ended <- ending{r.URL.Path, time.Now(), got, err}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d", sum, got)
		return
	case "/download":
		defer func() { s.ended <- ending{path: r.URL.Path, at: time.Now()} }()
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		var src io.Reader = newBody(n)
		if rate, _ := strconv.ParseInt(q.Get("rate"), 10, 64); rate > 0 {
			src = &paced{r: src, rate: rate, start: time.Now()}
		}
		io.CopyBuffer(w, src, make([]byte, 32<<10))
	case "/slow":
		defer func() { s.ended <- ending{path: r.URL.Path, at: time.Now()} }()
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		src := newBody(n)
		buf := make([]byte, 32<<10)
		for {
			k, _ := src.Read(buf)
			if k == 0 {
				return
			}
			k, err := w.Write(buf[:k])
			s.written.Add(int64(k))
			if err != nil {
				return
			}
		}
	case "/events":
		defer func() { s.ended <- ending{path: r.URL.Path, at: time.Now()} }()
		w.Header().Set("Content-Type", "text/event-stream")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: event %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	default:
		http.NotFound(w, r)
	}
}

// paced reads r at most rate bytes per second since start.
type paced struct {
	r     io.Reader
	rate  int64
	start time.Time
	done  int64
}

func (p *paced) Read(b []byte) (int, error) {
	// What the rate allows now, at least one small read's worth.
	b = b[:min(len(b), 16<<10)]
	due := p.start.Add(time.Duration(p.done * int64(time.Second) / p.rate))
	time.Sleep(time.Until(due))
	n, err := p.r.Read(b)
	p.done += int64(n)
	return n, err
}

// grpcService is the meshed gRPC service, in the test process: its
// StreamingOutputCall sends a message of 1 KiB every 20 ms until its
// client goes (whatever the request asks), then sends "grpc" and the
// time on ended.
type grpcService struct {
	testpb.UnimplementedTestServiceServer
	ended chan<- ending
}

func (g *grpcService) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	defer func() { g.ended <- ending{path: "grpc", at: time.Now()} }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	msg := &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, 1024)}}
	for {
		if err := stream.Send(msg); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// serveGRPC serves g, with the standard health service, on a loopback
// port, until the test ends or the returned server is stopped.
func serveGRPC(t *testing.T, g *grpcService) (*grpc.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, g)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return srv, l.Addr().String()
}
