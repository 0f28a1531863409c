package benchrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// EchoHandler answers every request with its own body, as
// application/octet-stream.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.ContentLength
		if n < 0 || n > 1<<20 {
			n = 512
		}
		buf := make([]byte, 0, n)
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			m, err := r.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.Write(buf)
	})
}

// echoGRPC is grpc.testing.TestService whose UnaryCall answers with a
// payload of the requested size, the request's own when sizes match.
type echoGRPC struct {
	testpb.UnimplementedTestServiceServer
}

func (echoGRPC) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	body := req.GetPayload().GetBody()
	if n := int(req.GetResponseSize()); len(body) != n {
		body = make([]byte, n)
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

// EchoConfig says where the echo service serves.
type EchoConfig struct {
	// HTTP is the address of the plain HTTP echo, which also serves the
	// streaming scenarios' downloads and uploads (/download, /upload);
	// empty: none.
	HTTP string
	// GRPC is the address of the h2c gRPC echo (TestService's UnaryCall
	// and StreamingOutputCall, with the standard health service); empty:
	// none.
	GRPC string
	// NATS, when set, is a NATS URL: the echo then also serves in process,
	// through an agent for Service with Handle and GRPCServer.
	NATS string
	// Service is the in-process agent's service name. Empty means "echo".
	Service string
	// Policy, when set, is a mesh file the in-process agent applies.
	Policy string
	// Telemetry gives the in-process agent metrics (tracing off), as
	// natsmesh agent records by default; false records nothing.
	Telemetry bool
}

// ServeEcho serves the echo service until ctx ends. ready is called once it
// serves everywhere it was asked to.
func ServeEcho(ctx context.Context, cfg EchoConfig, ready func()) error {
	errc := make(chan error, 2)
	if cfg.HTTP != "" {
		l, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			return fmt.Errorf("benchrun: echo: %w", err)
		}
		srv := &http.Server{Handler: bulkHandler(EchoHandler()), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.Serve(l) }()
		defer srv.Close()
	}
	if cfg.GRPC != "" {
		l, err := net.Listen("tcp", cfg.GRPC)
		if err != nil {
			return fmt.Errorf("benchrun: echo: %w", err)
		}
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(srv, echoGRPC{})
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { errc <- srv.Serve(l) }()
		defer srv.Stop()
	}
	if cfg.NATS != "" {
		service := cfg.Service
		if service == "" {
			service = "echo"
		}
		nc, err := nats.Connect(cfg.NATS, nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		if err != nil {
			return fmt.Errorf("benchrun: echo: %w", err)
		}
		defer nc.Close()
		acfg := agent.Config{Service: service, Logger: slog.New(slog.DiscardHandler)}
		if cfg.Telemetry {
			tel, err := telemetry.New(telemetry.Config{Service: service})
			if err != nil {
				return err
			}
			defer tel.Shutdown(context.Background())
			acfg.Telemetry = tel
		}
		if cfg.Policy != "" {
			src, err := live.WatchFile(ctx, cfg.Policy, live.SourceConfig{})
			if err != nil {
				return err
			}
			defer src.Close()
			acfg.Policies = src
		}
		a, err := agent.New(nc, acfg)
		if err != nil {
			return err
		}
		if err := a.Handle(EchoHandler()); err != nil {
			return err
		}
		testpb.RegisterTestServiceServer(a.GRPCServer(), echoGRPC{})
		if err := a.Start(ctx); err != nil {
			return err
		}
		defer a.Shutdown(context.Background())
		if err := a.Ready(10 * time.Second); err != nil {
			return err
		}
	}
	ready()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("benchrun: echo: %w", err)
	}
}
