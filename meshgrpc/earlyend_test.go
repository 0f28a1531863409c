package meshgrpc

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/pipeline"
)

// quitsEarly's client stream reads one message, sends its headers, and
// ends with an error a while later (past grpcstream.AnswerWait: its
// answer streams), reading no more.
type quitsEarly struct {
	testpb.UnimplementedTestServiceServer
}

func (quitsEarly) StreamingInputCall(s testpb.TestService_StreamingInputCallServer) error {
	if _, err := s.Recv(); err != nil {
		return err
	}
	s.SendHeader(metadata.Pairs("x-seen", "1"))
	time.Sleep(30 * time.Millisecond)
	return status.Error(codes.ResourceExhausted, "enough")
}

// TestRequestBodyStopped: a client stream whose service ended the call
// while the client still sends (3 MiB of messages, far more than the
// mesh holds) has its Send fail with io.EOF, as grpc-go's does, and
// CloseAndRecv tell the service's status; over NATS, to the in-process
// Server and to a real gRPC server. The stream's pump stopped reading
// the request without telling its writer, whose Send waited for the
// call's deadline (for ever without one).
func TestRequestBodyStopped(t *testing.T) {
	for _, kind := range []string{"server", "upstream"} {
		t.Run(kind, func(t *testing.T) {
			var h pipeline.Handler
			if kind == "server" {
				s := NewServer()
				testpb.RegisterTestServiceServer(s, quitsEarly{})
				h = s
			} else {
				addr := startServer(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, quitsEarly{}) })
				h = &Upstream{Conn: dialGRPC(t, addr)}
			}
			nc := runGRPCTestNATS(t)
			serveGRPCOverNATS(t, nc, "orders", h)
			tc := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "orders"})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			st, err := tc.StreamingInputCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			req := &testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 1024)}}
			var sendErr error
			for range 3000 {
				if sendErr = st.Send(req); sendErr != nil {
					break
				}
			}
			if sendErr != nil && !errors.Is(sendErr, io.EOF) {
				t.Fatalf("Send: %v, want io.EOF once the call is over", sendErr)
			}
			_, err = st.CloseAndRecv()
			if ctx.Err() != nil {
				t.Fatal("the client's Send waited for the call's deadline")
			}
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("CloseAndRecv: %v, want the service's ResourceExhausted", err)
			}
		})
	}
}
