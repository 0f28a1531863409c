package agent

import (
	"context"
	"io"
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

func (s *testService) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	sum := 0
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(sum)})
		}
		if err != nil {
			return err
		}
		sum += len(req.GetPayload().GetBody())
	}
}

// TestGRPCStreams: issue 18. Streaming calls cross the mesh through the
// gRPC proxy to a sidecar's service (h2c upstream) and to an in-process
// one, and from the in-process ClientConn; a stream left open does not
// hold up Shutdown past its deadline, and its client is told.
func TestGRPCStreams(t *testing.T) {
	b := meshtest.Broker(t)
	up, _ := grpcUpstream(t, "orders-1")
	startAgent(t, b, Config{Service: "orders", Upstream: up})
	startAgent(t, b, Config{Service: "users"}, func(a *Agent) {
		testpb.RegisterTestServiceServer(a.GRPCServer(), &testService{name: "inproc"})
	})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeGRPCProxy)
	callCtx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	clients := map[string]testpb.TestServiceClient{}
	for _, service := range []string{"orders", "users"} {
		cc, err := grpc.NewClient(proxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(service))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		clients["proxy to "+service] = testpb.NewTestServiceClient(cc)
		conn, err := web.ClientConn(service)
		if err != nil {
			t.Fatal(err)
		}
		clients["ClientConn to "+service] = testpb.NewTestServiceClient(conn)
	}
	for name, client := range clients {
		t.Run(name+": server stream", func(t *testing.T) {
			stream, err := client.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 1}, {Size: 1}},
				Payload:            &testpb.Payload{Body: []byte("hi")},
			})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				resp, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(resp.GetPayload().GetBody()) != "hi" {
					t.Errorf("message %q", resp.GetPayload().GetBody())
				}
				n++
			}
			if n != 3 {
				t.Errorf("%d messages, want 3", n)
			}
		})
		t.Run(name+": client stream", func(t *testing.T) {
			stream, err := client.StreamingInputCall(callCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{3, 70000, 0} {
				if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil || resp.GetAggregatedPayloadSize() != 70003 {
				t.Errorf("got %v, %v; want 70003", resp, err)
			}
		})
	}

	t.Run("shutdown ends an open stream at its deadline", func(t *testing.T) {
		held, err := clients["proxy to orders"].FullDuplexCall(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer scancel()
		start := time.Now()
		err = web.Shutdown(sctx)
		t.Logf("shutdown took %v with a stream open: %v", time.Since(start), err)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("shutdown took %v", took)
		}
		if _, err := held.Recv(); status.Code(err) == codes.OK {
			t.Errorf("the open stream got %v, want an error", err)
		}
	})
}
