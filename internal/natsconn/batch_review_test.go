package natsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/batchconn"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/testcert"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestDrainSendsTheLastReplies (review of 07588fb): Close drains a
// connection whose handlers are still answering a burst of requests;
// every request gets its answer, the last ones gathered by a
// batchconn.Conn just before nats.go closes it.
func TestDrainSendsTheLastReplies(t *testing.T) {
	b := meshtest.BareBroker(t)
	cfg := Config{URL: b.ClientURL(), Logger: quiet()}
	srv, err := Connect(context.Background(), "orders", cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var got atomic.Int32
	busy := make(chan struct{})
	if _, err := srv.Subscribe("mesh.orders", func(m *nats.Msg) {
		if got.Add(1) == n/2 {
			close(busy) // half the requests wait for their turn
		}
		time.Sleep(time.Millisecond)
		m.Respond(m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	srv.Flush()
	cli, err := Connect(context.Background(), "web", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(context.Background(), cli)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strconv.Itoa(i)
			m, err := cli.Request("mesh.orders", []byte(want), 10*time.Second)
			if err == nil && string(m.Data) != want {
				err = fmt.Errorf("asked %s, answered %s", want, m.Data)
			}
			errs <- err
		}()
	}
	<-busy
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Close(ctx, srv); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestBurstsAcrossBrokerRestart (review of 07588fb): 32 callers ask a
// responder without pause, both connected through batchconn; the broker
// restarts twice mid-burst. No request is answered twice or with another
// request's answer, no request reaches the responder twice, each caller's
// requests reach it in order, and after each restart calls succeed again.
func TestBurstsAcrossBrokerRestart(t *testing.T) {
	b := meshtest.BareBroker(t)
	addr, _ := url.Parse(b.ClientURL())
	cfg := Config{URL: b.ClientURL(), Logger: quiet()}
	srv, err := Connect(context.Background(), "orders", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var mu sync.Mutex
	seen := map[string]bool{}
	last := map[int]int{}
	var dup, disorder atomic.Int32
	if _, err := srv.Subscribe("mesh.orders", func(m *nats.Msg) {
		var c, i int
		fmt.Sscanf(string(m.Data), "%d:%d", &c, &i)
		mu.Lock()
		if seen[string(m.Data)] {
			dup.Add(1)
		}
		seen[string(m.Data)] = true
		if l, ok := last[c]; ok && i <= l {
			disorder.Add(1)
		}
		last[c] = i
		mu.Unlock()
		m.Respond(m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	cli, err := Connect(context.Background(), "web", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	stop := make(chan struct{})
	var ok, failed, wrong atomic.Int32
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := fmt.Sprintf("%d:%d", c, i)
				m, err := cli.Request("mesh.orders", []byte(want), time.Second)
				switch {
				case err != nil:
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
				case string(m.Data) != want:
					wrong.Add(1)
				default:
					ok.Add(1)
				}
			}
		}()
	}
	// waitCalls waits for calls to succeed again.
	waitCalls := func() {
		t.Helper()
		from := ok.Load()
		meshtest.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
			if ok.Load() < from+500 {
				return fmt.Errorf("%d calls answered since, want 500", ok.Load()-from)
			}
			return nil
		})
	}
	waitCalls()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := b.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		b = meshtest.Broker(t, func(c *broker.Config) { c.Listen = addr.Host; c.NoJetStream = true; c.LameDuckDuration = -1 })
		waitCalls()
	}
	close(stop)
	wg.Wait()
	t.Logf("%d answered, %d failed", ok.Load(), failed.Load())
	if w, d, o := wrong.Load(), dup.Load(), disorder.Load(); w+d+o > 0 {
		t.Fatalf("%d wrong answers, %d requests delivered twice, %d out of order", w, d, o)
	}
}

// TestOverTLS (review of 07588fb): a batchconn.Conn under nats.go's TLS:
// the handshake, a burst of calls, a drain (close_notify goes through a
// Conn that ignores write deadlines).
func TestOverTLS(t *testing.T) {
	cert, key := testcert.SelfSigned(t)
	b := meshtest.Broker(t, func(c *broker.Config) {
		c.TLS = broker.TLS{CertFile: cert, KeyFile: key}
		c.NoJetStream = true
		c.LameDuckDuration = -1
	})
	cfg := Config{URL: b.ClientURL(), TLSCA: cert, Logger: quiet()}
	srv, err := Connect(context.Background(), "orders", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.TLSConnectionState(); err != nil {
		t.Fatalf("not TLS: %v", err)
	}
	srv.Subscribe("mesh.orders", func(m *nats.Msg) { m.Respond(m.Data) })
	srv.Flush()
	cli, err := Connect(context.Background(), "web", cfg)
	if err != nil {
		t.Fatal(err)
	}
	burstThenClose(t, "TLS", cli, srv, strconv.Itoa)
}

// burstThenClose makes 64 concurrent calls from cli to srv's echo on
// mesh.orders, body(i) each, then closes both (Close: a drain), each
// within 2 s.
func burstThenClose(t *testing.T, over string, cli, srv *nats.Conn, body func(int) string) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := body(i)
			m, err := cli.Request("mesh.orders", []byte(want), 5*time.Second)
			if err != nil || string(m.Data) != want {
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, nc := range []*nats.Conn{cli, srv} {
		start := time.Now()
		if err := Close(ctx, nc); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Close over %s took %v", over, d)
		}
	}
}

// freezer is a TCP proxy to a broker whose connections made so far can
// be frozen: it stops carrying their bytes either way and keeps them
// open, as a broker's host does when it hangs or a network partition
// drops its packets. Connections made after a freeze are carried.
type freezer struct {
	ln     net.Listener
	to     string
	mu     sync.Mutex
	frozen []chan struct{}
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, to string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, to: to}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) URL() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) accept() {
	defer f.wg.Done()
	for {
		a, err := f.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", f.to)
		if err != nil {
			a.Close()
			continue
		}
		frozen := make(chan struct{})
		f.mu.Lock()
		f.frozen = append(f.frozen, frozen)
		f.conns = append(f.conns, a, b)
		f.mu.Unlock()
		carry := func(dst, src net.Conn) {
			defer f.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				select {
				case <-frozen:
					return // the bytes read are lost, as a hung host's
				default:
				}
				if n > 0 {
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					dst.Close()
					return
				}
			}
		}
		f.wg.Add(2)
		go carry(a, b)
		go carry(b, a)
	}
}

// freeze freezes the connections made so far.
func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.frozen {
		close(c)
	}
	f.frozen = nil
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TestHungBrokerNoticed (review of 07588fb): with a batchconn.Conn the
// connection still notices within about 6 s (PingInterval 2 s,
// MaxPingsOutstanding 2) a broker that stopped answering while calls
// keep being made, and reconnects.
func TestHungBrokerNoticed(t *testing.T) {
	b := meshtest.BareBroker(t)
	f := newFreezer(t, strings.TrimPrefix(b.ClientURL(), "nats://"))
	srv, err := Connect(context.Background(), "orders", Config{URL: b.ClientURL(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Subscribe("mesh.orders", func(m *nats.Msg) { m.Respond(m.Data) })
	srv.Flush()
	cli, err := Connect(context.Background(), "web", Config{URL: f.URL(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Request("mesh.orders", []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	f.freeze()
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 { // calls keep coming, and time out
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cli.Request("mesh.orders", make([]byte, 1000), 200*time.Millisecond)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	meshtest.CheckFor(t, 9*time.Second, 10*time.Millisecond, func() error {
		if cli.IsConnected() && cli.Stats().Reconnects == 0 {
			return errors.New("still connected to the hung broker")
		}
		return nil
	})
	t.Logf("noticed after %v", time.Since(start).Round(10*time.Millisecond))
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := cli.Request("mesh.orders", []byte("x"), time.Second)
		return err
	})
}

// TestUsersDialOptionsKept (review of 07588fb): Config.Options are
// "further nats.go options, applied last"; since the connection dials
// through batchconn.Dialer, nats.go's Dialer option (a net.Dialer with
// the user's LocalAddr, KeepAlive, Control), Timeout (which bounded the
// dial) and FlusherTimeout (which bounded each write) were silently
// ignored.
func TestUsersDialOptionsKept(t *testing.T) {
	b := meshtest.BareBroker(t)
	var dialed atomic.Bool
	d := &net.Dialer{Control: func(string, string, syscall.RawConn) error {
		dialed.Store(true)
		return nil
	}}
	nc, err := Connect(context.Background(), "web", Config{URL: b.ClientURL(), Logger: quiet(),
		Options: []nats.Option{nats.Dialer(d), nats.Timeout(7 * time.Second), nats.FlusherTimeout(3 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !dialed.Load() {
		t.Error("the connection was not dialed with the nats.Dialer option's net.Dialer")
	}
	bd, ok := nc.Opts.CustomDialer.(batchconn.Dialer)
	if !ok {
		t.Fatalf("the connection's dialer is %T, want a batchconn.Dialer", nc.Opts.CustomDialer)
	}
	if bd.Timeout != 7*time.Second || bd.WriteTimeout != 3*time.Second {
		t.Errorf("dial timeout %v, write timeout %v: want nats.Timeout's 7s and nats.FlusherTimeout's 3s", bd.Timeout, bd.WriteTimeout)
	}
}
