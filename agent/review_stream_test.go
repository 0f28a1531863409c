package agent

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// Review tests (issue 18): each fails on the code it demonstrates a
// defect of.

// rawStatus sends raw on a new connection to addr and returns the status
// of the answer, or 0 if none came within wait.
func rawStatus(t *testing.T, addr, raw string, wait time.Duration) (int, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(wait))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, time.Since(start)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// TestReviewUpgradeHeadUnbounded: a request is bounded by the default
// deadline until its answer's head; an upgrade request is not bounded at
// all. Its body (the tunnel) only starts after a 101, so "the head's
// deadline runs from the end of the request body" (Mesh-Stream-Deadline:
// head) never starts it on the callee, and the caller waits for the head
// unbounded (Request.Unbounded, since the call has a body): a service
// that never answers a WebSocket handshake holds the client, both agents
// and the callee's concurrency slot for as long as the client waits
// (forever, for a client without its own timeout), while the same
// request without Upgrade gets its 504 at the default deadline.
func TestReviewUpgradeHeadUnbounded(t *testing.T) {
	b := meshtest.Broker(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	t.Cleanup(up.Close)
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL})
	web := startAgent(t, b, Config{Service: "web", Timeout: 300 * time.Millisecond})
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })

	plain := "GET /hang HTTP/1.1\r\nHost: orders\r\n\r\n"
	if code, d := rawStatus(t, bind, plain, 4*time.Second); code != http.StatusGatewayTimeout {
		t.Fatalf("control: a plain request to a service that never answers: status %d after %v, want 504", code, d)
	}
	upgrade := "GET /hang HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	code, d := rawStatus(t, bind, upgrade, 4*time.Second)
	if code == 0 {
		t.Errorf("an upgrade request to a service that never answers its handshake: no answer in %v (default deadline 300ms)", d.Round(time.Millisecond))
	}
}

// hangingService answers nothing to UnaryCall until its call ends.
type hangingService struct {
	testpb.UnimplementedTestServiceServer
}

func (hangingService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestReviewProxiedUnaryUnbounded: the agent's default deadline bounds a
// unary gRPC call without a deadline of its own when it is made in
// process (ClientConn), but not through the sidecar's gRPC proxy, which
// marks every call a stream: Mesh-Stream-Deadline: none and an
// unbounded wait for the head. A unary call to a service that hangs
// hangs as long as its client does.
func TestReviewProxiedUnaryUnbounded(t *testing.T) {
	b := meshtest.Broker(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, hangingService{})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	startAgent(t, b, Config{Service: "orders", Upstream: "h2c://" + l.Addr().String()})
	web := startAgent(t, b, Config{Service: "web", Timeout: 300 * time.Millisecond})

	// Control: in process, the default deadline ends the call.
	inproc, err := web.ClientConn("orders")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = testpb.NewTestServiceClient(inproc).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 2*time.Second {
		t.Fatalf("control, in process: %v after %v, want DeadlineExceeded at the 300ms default", err, time.Since(start))
	}

	proxy := listen(t, web.ServeGRPCProxy)
	cc, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background()) // no deadline
	defer cancel()
	done := make(chan error, 1)
	start = time.Now()
	go func() {
		_, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
		done <- err
	}()
	select {
	case err := <-done:
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("through the proxy: %v, want DeadlineExceeded", err)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("through the proxy: a unary call without a deadline to a service that hangs has no answer after %v (default deadline 300ms)", time.Since(start).Round(time.Millisecond))
		cancel()
		<-done
	}
}
