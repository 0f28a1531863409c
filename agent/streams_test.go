package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// The streaming methods of the interop TestService, as a real service
// implements them.

func (s *testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	for range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
	return nil
}

func (s *testService) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// TestGRPCStreamsFailClearly: issue 9 item 16. Until streams cross the
// mesh, every streaming call through the gRPC proxy fails at once with
// Unimplemented and a clear message, well before the client's deadline, and
// a stream left open does not hold up Shutdown.
func TestGRPCStreamsFailClearly(t *testing.T) {
	b := meshtest.Broker(t)
	up, _ := grpcUpstream(t, "orders-1")
	startAgent(t, b, Config{Service: "orders", Upstream: up})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeGRPCProxy)
	cc, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)
	const clientDeadline = 10 * time.Second
	unimplemented := func(t *testing.T, err error, took time.Duration) {
		t.Helper()
		s := status.Convert(err)
		if s.Code() != codes.Unimplemented || !strings.Contains(s.Message(), "stream") {
			t.Errorf("got %v, want Unimplemented naming streams", err)
		}
		t.Logf("failed after %v: %v", took, s.Message())
		if took >= clientDeadline {
			t.Errorf("waited for the client's deadline")
		}
	}
	callCtx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("bidi ping_pong", func(t *testing.T) {
		start := time.Now()
		stream, err := client.FullDuplexCall(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("ping")}})
		_, err = stream.Recv() // waits for the pong
		unimplemented(t, err, time.Since(start))
	})
	t.Run("bidi waiting for the server", func(t *testing.T) {
		start := time.Now()
		stream, err := client.FullDuplexCall(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		unimplemented(t, err, time.Since(start))
	})
	t.Run("client stream", func(t *testing.T) {
		start := time.Now()
		stream, err := client.StreamingInputCall(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(&testpb.StreamingInputCallRequest{})
		stream.Send(&testpb.StreamingInputCallRequest{})
		_, err = stream.CloseAndRecv()
		unimplemented(t, err, time.Since(start))
	})
	t.Run("server stream", func(t *testing.T) {
		start := time.Now()
		stream, err := client.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		unimplemented(t, err, time.Since(start))
	})
	t.Run("in-process ClientConn", func(t *testing.T) {
		conn, _ := web.ClientConn("orders")
		start := time.Now()
		stream, err := testpb.NewTestServiceClient(conn).FullDuplexCall(callCtx(t))
		if err == nil {
			_, err = stream.Recv()
		}
		unimplemented(t, err, time.Since(start))
	})
	t.Run("shutdown does not wait on an open stream", func(t *testing.T) {
		held, err := client.FullDuplexCall(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer held.CloseSend()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		start := time.Now()
		if err := web.Shutdown(sctx); err != nil {
			t.Fatalf("shutdown with an open stream: %v", err)
		}
		t.Logf("shutdown took %v with a stream open", time.Since(start))
	})
}
