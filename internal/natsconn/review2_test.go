package natsconn

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/batchconn"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/testcert"
)

// TestOverWebsocket (second review of batchconn): nats.go dials a ws://
// or wss:// URL through the batchconn dialer and then makes the TLS and
// websocket handshakes and frames over it; a burst of calls, then a
// drain, work.
func TestOverWebsocket(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[secure], func(t *testing.T) {
			cert, key := testcert.SelfSigned(t)
			b := meshtest.Broker(t, func(c *broker.Config) {
				c.NoJetStream = true
				c.LameDuckDuration = -1
				c.Options = func(o *server.Options) {
					o.Websocket.Host = "127.0.0.1"
					o.Websocket.Port = -1
					o.Websocket.NoTLS = !secure
					if secure {
						tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
						if err != nil {
							t.Fatal(err)
						}
						o.Websocket.TLSConfig = tc
					}
				}
			})
			cfg := Config{URL: b.Server().WebsocketURL(), Logger: quiet()}
			if secure {
				cfg.TLSCA = cert
			}
			srv, err := Connect(context.Background(), "orders", cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Subscribe("mesh.orders", func(m *nats.Msg) { m.Respond(m.Data) })
			srv.Flush()
			cli, err := Connect(context.Background(), "web", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := cli.Opts.CustomDialer.(batchconn.Dialer); !ok || !strings.HasPrefix(cli.ConnectedUrl(), "ws") {
				t.Fatalf("connected to %s with %T", cli.ConnectedUrl(), cli.Opts.CustomDialer)
			}
			if _, err := cli.TLSConnectionState(); (err == nil) != secure {
				t.Fatalf("TLS: %v", err)
			}
			burstThenClose(t, "websocket", cli, srv, func(i int) string { return strconv.Itoa(i) + strings.Repeat("x", i*100) })
		})
	}
}

// fakeDNS makes the process's resolver answer name with addrs (A
// records), as a DNS name of several brokers (a headless service) would,
// until the test ends.
func fakeDNS(t *testing.T, name string, addrs ...[4]byte) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), name+".") {
				for _, a := range addrs {
					b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: a})
				}
			}
			msg, err := b.Finish()
			if err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	t.Cleanup(func() {
		net.DefaultResolver = old
		pc.Close()
		<-done
	})
}

// TestDialOfSeveralAddressesBoundedByTimeout (second review of
// batchconn): nats.go dials each address a server's name resolves to in
// turn, each within nats.Timeout divided by their number, so that a dead
// address (a broker's host gone, its packets dropped) costs a
// (re)connection no more than nats.Timeout in all. The batchconn dialer
// gives each address the whole nats.Timeout: with half the addresses
// dead, a connection takes up to twice as long to be made.
func TestDialOfSeveralAddressesBoundedByTimeout(t *testing.T) {
	b := meshtest.BareBroker(t)
	u, _ := url.Parse(b.ClientURL())
	const name = "brokers.natsmesh.test"
	fakeDNS(t, name, [4]byte{127, 0, 0, 2}, [4]byte{127, 0, 0, 1})
	var mu sync.Mutex
	var dialed []string
	d := &net.Dialer{Timeout: 3 * time.Second, ControlContext: func(ctx context.Context, _, addr string, _ syscall.RawConn) error {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		if strings.HasPrefix(addr, "127.0.0.2:") { // dead: its SYNs are dropped
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	opts := []nats.Option{nats.Dialer(d), nats.DontRandomize(), nats.Timeout(d.Timeout)}
	url := "nats://" + net.JoinHostPort(name, u.Port())

	connect := func(t *testing.T, connect func() (*nats.Conn, error)) time.Duration {
		t.Helper()
		mu.Lock()
		dialed = nil
		mu.Unlock()
		start := time.Now()
		nc, err := connect()
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(dialed) != 2 || !strings.HasPrefix(dialed[0], "127.0.0.2:") {
			t.Fatalf("dialed %v, want the dead address first, then the broker", dialed)
		}
		return took
	}
	plain := connect(t, func() (*nats.Conn, error) { return nats.Connect(url, opts...) })
	batch := connect(t, func() (*nats.Conn, error) {
		return Connect(context.Background(), "web", Config{URL: url, Logger: quiet(), Options: opts})
	})
	t.Logf("nats.go's own dialer: %v; through batchconn: %v", plain.Round(time.Millisecond), batch.Round(time.Millisecond))
	if batch > plain+time.Second/2 {
		t.Errorf("connected through batchconn in %v, nats.go's own dialer in %v: a dead address of the server's name took the whole nats.Timeout (%v)",
			batch.Round(time.Millisecond), plain.Round(time.Millisecond), d.Timeout)
	}
}

// TestUsersMultipathTCPKept (second review of batchconn): nats.go's
// MultipathTCP option turns MPTCP on or off for the connections its
// dialer makes; the batchconn dialer that replaces it ignored it.
func TestUsersMultipathTCPKept(t *testing.T) {
	b := meshtest.BareBroker(t)
	for _, on := range []bool{true, false} {
		t.Run(strconv.FormatBool(on), func(t *testing.T) {
			opts := []nats.Option{nats.MultipathTCP(on)}
			if !on {
				d := &net.Dialer{}
				d.SetMultipathTCP(true)
				opts = append(opts, nats.Dialer(d))
			}
			nc, err := Connect(context.Background(), "web", Config{URL: b.ClientURL(), Logger: quiet(), Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			bd, ok := nc.Opts.CustomDialer.(batchconn.Dialer)
			if !ok {
				t.Fatalf("the connection's dialer is %T, want a batchconn.Dialer", nc.Opts.CustomDialer)
			}
			if got := bd.Net != nil && bd.Net.MultipathTCP(); got != on {
				t.Errorf("nats.MultipathTCP(%v): the dialer's MPTCP is %v", on, got)
			}
		})
	}
}

// TestSeveralAddressesDialedInRandomOrder (second review of batchconn):
// as nats.go's own dialer, the batchconn dialer tries the addresses of a
// server's name in random order, so that clients spread over the
// brokers behind one name, and in order with nats.DontRandomize.
func TestSeveralAddressesDialedInRandomOrder(t *testing.T) {
	b := meshtest.BareBroker(t)
	u, _ := url.Parse(b.ClientURL())
	const name = "brokers.natsmesh.test"
	fakeDNS(t, name, [4]byte{127, 0, 0, 2}, [4]byte{127, 0, 0, 1})
	for _, random := range []bool{true, false} {
		first := map[string]int{}
		for range 20 {
			var mu sync.Mutex
			var dialed []string
			d := &net.Dialer{ControlContext: func(_ context.Context, _, addr string, _ syscall.RawConn) error {
				mu.Lock()
				defer mu.Unlock()
				dialed = append(dialed, addr)
				if strings.HasPrefix(addr, "127.0.0.2:") {
					return errors.New("refused")
				}
				return nil
			}}
			opts := []nats.Option{nats.Dialer(d)}
			if !random {
				opts = append(opts, nats.DontRandomize())
			}
			nc, err := Connect(context.Background(), "web", Config{URL: "nats://" + net.JoinHostPort(name, u.Port()), Logger: quiet(), Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			nc.Close()
			mu.Lock()
			first[strings.Split(dialed[0], ":")[0]]++
			mu.Unlock()
		}
		if spread := len(first) == 2; spread != random {
			t.Errorf("random %v: the address dialed first: %v", random, first)
		}
	}
}
