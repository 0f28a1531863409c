package bridge

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/httpguard"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/testcert"
	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// helperEnv, when set to a NATS URL, makes the test binary run as the helper
// process of TestGatewayEndToEnd: a meshed HTTP service in a second process.
const helperEnv = "BRIDGE_TEST_HELPER_NATS_URL"

func TestMain(m *testing.M) {
	if url := os.Getenv(helperEnv); url != "" {
		if err := runHelperService(url); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// echo is what the helper's HTTP service answers: the request as it saw it.
type echo struct {
	Caller, Method, Path, RawPath, Query, Host, Body string
	Header                                           http.Header
}

// runHelperService serves "orders" subset v1 with a plain http.Handler over
// NATS until its stdin closes (the test ends or dies).
func runHelperService(url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Drain()
	mux := http.NewServeMux()
	mux.HandleFunc("/status503", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Status", "503")
		w.WriteHeader(503)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "with trailers")
		w.Header().Set("X-Sum", "99")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		caller, _ := pipeline.CallerFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Served-By", fmt.Sprint(os.Getpid()))
		json.NewEncoder(w).Encode(echo{Caller: caller, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
			Query: r.URL.RawQuery, Host: r.Host, Body: string(body), Header: r.Header})
	})
	in, err := pipeline.NewInbound(nc, pipeline.InboundConfig{Service: "orders",
		Handler: &meshhttp.Handler{Handler: mux, Limits: func() wire.Limits { return wire.Limits{MaxPayload: nc.MaxPayload()} }}})
	if err != nil {
		return err
	}
	subjects, queues := wire.ServiceSubjects("orders", "v1")
	for i := range subjects {
		if _, err := nc.QueueSubscribe(subjects[i], queues[i], in.ServeMsg); err != nil {
			return err
		}
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// startHelperService runs runHelperService in a second process and waits
// until it has subscribed.
func startHelperService(t *testing.T, url string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+url)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("helper process said %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("helper process not ready")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// runServer starts a broker for one test, without JetStream.
func runServer(t testing.TB) *server.Server {
	t.Helper()
	return meshtest.Broker(t, func(c *broker.Config) {
		c.NoJetStream = true
		c.LameDuckDuration = -1
	}).Server()
}

// connect opens a client connection over TCP to s, closed when the test ends.
func connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// gatewayConn is a connection for a gateway named "bridge".
func gatewayConn(t testing.TB, s *server.Server) *nats.Conn {
	return connect(t, s, nats.CustomInboxPrefix(wire.InboxPrefix("bridge")))
}

// stub is a middleware that answers every call with f, sending nothing.
func stub(f pipeline.SendFunc) []pipeline.OutboundMiddleware {
	return []pipeline.OutboundMiddleware{func(pipeline.Sender) pipeline.Sender { return f }}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in   string
		want Route
		bad  bool
	}{
		{in: "api.example.com=orders", want: Route{Host: "api.example.com", Service: "orders"}},
		{in: "/orders=orders@v2", want: Route{PathPrefix: "/orders", Service: "orders", Subset: "v2"}},
		{in: "/v2=v2.orders+strip", want: Route{PathPrefix: "/v2", Service: "orders", Subset: "v2", StripPrefix: true}},
		{in: "api.example.com/v1=orders", want: Route{Host: "api.example.com", PathPrefix: "/v1", Service: "orders"}},
		{in: "/time=nats:svc.time", want: Route{PathPrefix: "/time", Subject: "svc.time"}},
		{in: "/orders/=orders+strip", want: Route{PathPrefix: "/orders/", Service: "orders", StripPrefix: true}},
		{in: "localhost:8080=web", want: Route{Host: "localhost:8080", Service: "web"}},
		{in: "orders", bad: true},
		{in: "=orders", bad: true},
		{in: "/x=", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRoute(tt.in)
			if tt.bad {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("ParseRoute(%q) = %+v, %v; want ErrInvalidConfig", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRoute(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if back, _ := ParseRoute(got.String()); back != got {
				t.Fatalf("ParseRoute(%q.String()) = %+v", got, back)
			}
		})
	}
}

func TestNewGatewayValidation(t *testing.T) {
	req := gatewayConn(t, runServer(t))
	tests := []struct {
		name string
		cfg  GatewayConfig
		ok   bool
	}{
		{"valid", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/", Service: "web"}}}, true},
		{"no conn", GatewayConfig{Routes: []Route{{PathPrefix: "/", Service: "web"}}}, false},
		{"bad name", GatewayConfig{Conn: req, Name: "Bridge"}, false},
		{"route matches nothing", GatewayConfig{Conn: req, Routes: []Route{{Service: "web"}}}, false},
		{"prefix without slash", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "api", Service: "web"}}}, false},
		{"bad service", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/", Service: "Web"}}}, false},
		{"bad subset", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/", Service: "web", Subset: "v.1"}}}, false},
		{"service and subject", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/", Service: "web", Subject: "x"}}}, false},
		{"wildcard subject", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/", Subject: "svc.*"}}}, false},
		{"empty subject token", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/", Subject: "svc..x"}}}, false},
		{"duplicate", GatewayConfig{Conn: req, Routes: []Route{{PathPrefix: "/a", Service: "x"}, {PathPrefix: "/a", Service: "y"}}}, false},
		{"strip without prefix", GatewayConfig{Conn: req, Routes: []Route{{Host: "a", Service: "x", StripPrefix: true}}}, false},
		{"negative timeout", GatewayConfig{Conn: req, Timeout: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGateway(tt.cfg)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("NewGateway = %v, want ok=%v or ErrInvalidConfig", err, tt.ok)
			}
		})
	}
}

func TestGatewayMatch(t *testing.T) {
	nc := gatewayConn(t, runServer(t))
	g, err := NewGateway(GatewayConfig{
		Conn: nc,
		Routes: []Route{
			{PathPrefix: "/", Service: "web"},
			{PathPrefix: "/api", Service: "api"},
			{PathPrefix: "/api/orders", Service: "orders"},
			{PathPrefix: "/static/", Service: "static"},
			{Host: "admin.example.com", Service: "admin"},
			{Host: "admin.example.com", PathPrefix: "/api", Service: "admin-api"},
			{Host: "localhost:9000", Service: "local"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path, want string
	}{
		{"example.com", "/", "web"},
		{"example.com", "/index.html", "web"},
		{"example.com", "/api", "api"},
		{"example.com", "/api/", "api"},
		{"example.com", "/apix", "web"},
		{"example.com", "/api/orders/1", "orders"},
		{"example.com", "/api/ordersx", "api"},
		{"example.com", "/static", "web"},
		{"example.com", "/static/a.css", "static"},
		{"admin.example.com", "/", "admin"},
		{"ADMIN.example.com:443", "/users", "admin"},
		{"admin.example.com", "/api/orders", "admin-api"},
		{"localhost:9000", "/api", "local"},
		{"localhost:9001", "/api", "api"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			r, ok := g.Match(tt.host, tt.path)
			if !ok || r.Service != tt.want {
				t.Fatalf("Match(%q, %q) = %+v, %v; want %s", tt.host, tt.path, r, ok, tt.want)
			}
		})
	}
	g2, err := NewGateway(GatewayConfig{Conn: nc,
		Routes: []Route{{Host: "a.example", Service: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := g2.Match("b.example", "/"); ok {
		t.Fatalf("Match(b.example) = %+v, want no route", r)
	}
}

// startGateway serves g on a real loopback listener.
func startGateway(t *testing.T, g *Gateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := g.Server(ln.Addr().String(), nil)
	go srv.Serve(httpguard.Listen(ln))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

func TestGatewayEndToEnd(t *testing.T) {
	s := runServer(t)

	// (a) a NATS-native micro service.
	svcConn := connect(t, s)
	svc, err := micro.AddService(svcConn, micro.Config{Name: "clock", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if err := svc.AddEndpoint("echo", micro.HandlerFunc(func(req micro.Request) {
		req.Respond(append([]byte("micro:"), req.Data()...))
	}), micro.WithEndpointSubject("svc.echo")); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddEndpoint("missing", micro.HandlerFunc(func(req micro.Request) {
		req.Error("404", "not found", nil)
	}), micro.WithEndpointSubject("svc.missing")); err != nil {
		t.Fatal(err)
	}
	// (b) an HTTP handler in a second process.
	startHelperService(t, s.ClientURL())

	// A subscriber on everything of "big" counts what gets published.
	var published atomic.Int32
	watch := connect(t, s)
	watch.Subscribe("mesh.big.>", func(*nats.Msg) { published.Add(1) })
	watch.Flush()

	g, err := NewGateway(GatewayConfig{
		Conn:   connect(t, s, nats.CustomInboxPrefix(wire.InboxPrefix("edge"))),
		Name:   "edge",
		Logger: discardLogger(),
		Limits: wire.Limits{MaxPayload: 4096},
		Routes: []Route{
			{PathPrefix: "/echo", Subject: "svc.echo"},
			{PathPrefix: "/missing", Subject: "svc.missing"},
			{PathPrefix: "/orders/", Service: "orders", StripPrefix: true},
			{PathPrefix: "/v1/orders", Service: "orders", Subset: "v1"},
			{PathPrefix: "/nobody", Service: "nobody"},
			{PathPrefix: "/big", Service: "big"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := startGateway(t, g)
	client := &http.Client{Timeout: 10 * time.Second}

	do := func(t *testing.T, method, path string, header http.Header, body io.Reader) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	t.Run("micro endpoint", func(t *testing.T) {
		resp, body := do(t, "POST", "/echo", nil, strings.NewReader("hi"))
		if resp.StatusCode != 200 || string(body) != "micro:hi" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("micro error reply", func(t *testing.T) {
		resp, body := do(t, "GET", "/missing", nil, nil)
		if resp.StatusCode != 404 || resp.Header.Get(wire.HeaderError) != "" || resp.Header.Get("Nats-Service-Error") != "not found" {
			t.Fatalf("got %d %v %q, want the service's 404", resp.StatusCode, resp.Header, body)
		}
	})
	t.Run("http service in another process", func(t *testing.T) {
		hdr := http.Header{
			"Mesh-Status": {"200"}, "Mesh-Caller": {"admin"}, "Status": {"503"}, "Nats-Msg-Id": {"x"},
			"X-Multi": {"a", "b"}, "Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"Connection": {"X-Hop"}, "X-Hop": {"dropped"},
			"X-Forwarded-For": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"},
		}
		resp, body := do(t, "PUT", "/orders/items/a%2Fb?x=1&y=2", hdr, strings.NewReader("payload"))
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		var e echo
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("%v: %q", err, body)
		}
		if e.Caller != "edge" || e.Method != "PUT" || e.Path != "/items/a/b" || e.RawPath != "/items/a%2Fb" || e.Query != "x=1&y=2" || e.Body != "payload" {
			t.Fatalf("service saw %+v", e)
		}
		if !strings.HasPrefix(e.Host, "127.0.0.1:") {
			t.Fatalf("service saw host %q", e.Host)
		}
		// Mesh-* and NATS names from outside arrive as the client's own headers,
		// and never as metadata; a forged Mesh-Caller is replaced by the
		// caller the subject names.
		for k, want := range map[string]string{"Mesh-Status": "200", "Mesh-Caller": "edge", "Status": "503", "Nats-Msg-Id": "x", "Traceparent": hdr.Get("Traceparent")} {
			if got := e.Header.Get(k); got != want {
				t.Errorf("service saw %s %q, want %q", k, got, want)
			}
		}
		if got := e.Header["X-Multi"]; len(got) != 2 {
			t.Errorf("service saw X-Multi %q", got)
		}
		if e.Header.Get("X-Forwarded-For") != "127.0.0.1" || e.Header.Get("Forwarded") != "" || e.Header.Get("X-Forwarded-Proto") != "http" || e.Header.Get("X-Forwarded-Host") != e.Host {
			t.Errorf("forwarding headers %v", e.Header)
		}
		if e.Header.Get("X-Hop") != "" || e.Header.Get("Connection") != "" {
			t.Errorf("hop-by-hop headers reached the service: %v", e.Header)
		}
		if resp.Header.Get("X-Served-By") == fmt.Sprint(os.Getpid()) {
			t.Fatal("served by the test process, not the helper")
		}
	})
	t.Run("subset route", func(t *testing.T) {
		resp, body := do(t, "GET", "/v1/orders/1", nil, nil)
		var e echo
		if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil || e.Path != "/v1/orders/1" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("service 503 is not no-responders", func(t *testing.T) {
		resp, _ := do(t, "GET", "/orders/status503", nil, nil)
		if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != "" || resp.Header.Get("Status") != "503" {
			t.Fatalf("got %d %v, want the service's own 503", resp.StatusCode, resp.Header)
		}
	})
	t.Run("trailers", func(t *testing.T) {
		req, err := http.NewRequest("GET", base+"/orders/trailers", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != "with trailers" || resp.Trailer.Get("X-Sum") != "99" {
			t.Fatalf("got %q trailer %v", body, resp.Trailer)
		}
	})
	t.Run("no route", func(t *testing.T) {
		resp, _ := do(t, "GET", "/nowhere", nil, nil)
		if resp.StatusCode != 404 || resp.Header.Get(wire.HeaderError) != string(wire.KindNoRoute) {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("dot segment", func(t *testing.T) {
		resp, _ := do(t, "GET", "/orders/%2e%2e/admin", nil, nil)
		if resp.StatusCode != 400 || resp.Header.Get(wire.HeaderError) != string(wire.KindBadRequest) {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("no responders", func(t *testing.T) {
		start := time.Now()
		resp, _ := do(t, "GET", "/nobody", nil, nil)
		if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != string(wire.KindNoResponders) {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
		if d := time.Since(start); d > 5*time.Second { // a timeout would take the full 30s
			t.Fatalf("no responders took %v", d)
		}
	})
	t.Run("ambiguous framing over raw TCP", func(t *testing.T) {
		tests := []struct {
			name    string
			raw     string
			status  int
			body    string
			answers int // responses before the server closes the connection
			second  int // status of the second response, when checked
		}{
			{"conflicting Content-Length", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, "", 1, 0},
			// Go frames by chunked and drops Content-Length; Listen saw
			// both, so the gateway answers 400 and closes the connection:
			// the smuggled second request is never read.
			{"Content-Length and chunked", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 400, "", 1, 0},
			{"chunked and content-length, any case", "POST /echo HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 400, "", 1, 0},
			// Chunked alone is fine, and still closes the connection.
			{"chunked alone", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 200, "micro:hi", 1, 0},
			// The guard skips bodies by their length: a body that looks like
			// a head does not confuse it, and the next request is served.
			{"head-like body", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 55\r\n\r\nX: y\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 200, "", 2, 0},
			// HTTP/1.0 has no Transfer-Encoding: Go ignores it and would read
			// the chunked body as the next request; the guard makes it a 400.
			{"HTTP/1.0 with Transfer-Encoding", "POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 400, "", 1, 0},
			{"ambiguous after a good one", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 200, "micro:hi", 2, 400},
			{"keep-alive otherwise", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 200, "micro:hi", 2, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(conn, tt.raw)
				br := bufio.NewReader(conn)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || (tt.body != "" && string(body) != tt.body) {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
				}
				answers := 1
				if resp2, err := http.ReadResponse(br, nil); err == nil {
					answers++
					if tt.second != 0 && resp2.StatusCode != tt.second {
						t.Fatalf("second answer %d, want %d", resp2.StatusCode, tt.second)
					}
				}
				if answers != tt.answers {
					t.Fatalf("%d answers on the connection, want %d", answers, tt.answers)
				}
			})
		}
	})
	t.Run("too large before publishing", func(t *testing.T) {
		// A mesh service takes a body over max_payload as a stream
		// (issue 18); a NATS-native endpoint takes whole bodies only.
		for _, body := range []io.Reader{strings.NewReader(strings.Repeat("x", 5000)), io.MultiReader(strings.NewReader(strings.Repeat("x", 5000)))} {
			resp, msg := do(t, "POST", "/echo", nil, body)
			if resp.StatusCode != 413 || resp.Header.Get(wire.HeaderError) != string(wire.KindTooLarge) || !strings.Contains(string(msg), "natsmesh broker --max-payload") {
				t.Fatalf("got %d %v %q", resp.StatusCode, resp.Header, msg)
			}
		}
		resp, _ := do(t, "GET", "/big", http.Header{"X-Big": {strings.Repeat("a", 5000)}}, nil)
		if resp.StatusCode != 431 && resp.StatusCode != 413 {
			t.Fatalf("large headers: got %d", resp.StatusCode)
		}
		watch.Flush()
		if n := published.Load(); n != 0 {
			t.Fatalf("%d oversized messages were published", n)
		}
	})
}

func TestGatewaySlowloris(t *testing.T) {
	g, err := NewGateway(GatewayConfig{
		Conn:              gatewayConn(t, runServer(t)),
		Middleware:        stub(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { return nil, wire.ErrNoResponders }),
		Routes:            []Route{{PathPrefix: "/", Service: "web"}},
		Logger:            discardLogger(),
		ReadHeaderTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	base := startGateway(t, g)
	// The server's clock starts when it accepts the connection, so ours
	// starts before dialing.
	start := time.Now()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, conn) // returns when the server hangs up
		closed <- time.Since(start)
	}()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case d := <-closed:
			if d < 200*time.Millisecond || d > 2*time.Second {
				t.Fatalf("cut off after %v, want just after the 200ms ReadHeaderTimeout", d)
			}
			return
		case <-tick.C:
			// One header byte at a time, never finishing the headers.
			if _, err := io.WriteString(conn, "X"); err != nil {
				d := time.Since(start)
				if d < 200*time.Millisecond {
					t.Fatalf("write failed after %v: %v", d, err)
				}
				return
			}
		case <-timeout:
			t.Fatal("slow client still connected after 5s")
		}
	}
}

func TestGatewayServerSettings(t *testing.T) {
	g, err := NewGateway(GatewayConfig{Conn: gatewayConn(t, runServer(t))})
	if err != nil {
		t.Fatal(err)
	}
	srv := g.Server("127.0.0.1:8080", nil)
	if srv.ReadHeaderTimeout != 5*time.Second || srv.ReadTimeout <= 0 || srv.WriteTimeout <= pipeline.DefaultTimeout || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes != wire.DefaultMaxHeaderBytes {
		t.Fatalf("server settings %+v", srv)
	}
}

func TestGatewayAnswersOnce(t *testing.T) {
	tests := []struct {
		name   string
		req    pipeline.SendFunc
		status int
		kind   wire.Kind
	}{
		{"request func panics", func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { panic("boom") }, 500, wire.KindInternal},
		{"deadline", func(ctx context.Context, _ *pipeline.Call) (*pipeline.Reply, error) {
			<-ctx.Done()
			return nil, wire.FromError(ctx.Err())
		}, 504, wire.KindTimeout},
		{"overloaded", func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
			return pipeline.ReplyFromMsg(wire.ProtoHTTP, wire.ErrorMsg(&wire.Error{Kind: wire.KindOverloaded, RetryAfter: time.Second})), nil
		}, 503, wire.KindOverloaded},
		{"forged 101", func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
			return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"101"}, "Upgrade": {"evil"}}}), nil
		}, 502, wire.KindUpstream},
		{"status 999", func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
			return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"999"}}}), nil
		}, 502, wire.KindUpstream},
		{"service answer", func(context.Context, *pipeline.Call) (*pipeline.Reply, error) {
			m, err := httpwire.ResponseMsg(201, http.Header{"X-A": {"1"}}, []byte("ok"), nil, wire.Limits{})
			return pipeline.ReplyFromMsg(wire.ProtoHTTP, m), err
		}, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGateway(GatewayConfig{Conn: gatewayConn(t, runServer(t)), Middleware: stub(tt.req), Timeout: 50 * time.Millisecond, Logger: discardLogger(),
				Routes: []Route{{PathPrefix: "/", Service: "web"}}})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			if w.Code != tt.status || w.Header().Get(wire.HeaderError) != string(tt.kind) {
				t.Fatalf("got %d %v, want %d %q", w.Code, w.Header(), tt.status, tt.kind)
			}
		})
	}
}

// TestGatewayTLS serves the gateway over TLS through the framing guard: the
// service is told the client came over HTTPS, and ambiguous framing is
// still refused.
func TestGatewayTLS(t *testing.T) {
	s := runServer(t)
	svc := connect(t, s)
	in, err := pipeline.NewInbound(svc, pipeline.InboundConfig{Service: "orders", Handler: &meshhttp.Handler{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	})}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Subscribe("mesh.orders._.bridge.http.>", in.ServeMsg); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	g, err := NewGateway(GatewayConfig{Conn: gatewayConn(t, s), Routes: []Route{{PathPrefix: "/", Service: "orders"}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := testcert.SelfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := g.Server(ln.Addr().String(), cfg)
	go srv.Serve(httpguard.Listen(tls.NewListener(ln, cfg)))
	t.Cleanup(func() { srv.Close() })

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in " + certFile)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(body) != "https" {
		t.Fatalf("got %d %q, want 200 and X-Forwarded-Proto https", resp.StatusCode, body)
	}

	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	r2, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2.StatusCode != 400 {
		t.Fatalf("ambiguous framing over TLS: %d, want 400", r2.StatusCode)
	}
}
