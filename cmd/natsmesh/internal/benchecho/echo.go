package benchecho

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/telemetry"
)

// Handler answers every request with its own body, as
// application/octet-stream.
func Handler() http.Handler {
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

// GRPC is grpc.testing.TestService whose UnaryCall answers with a
// payload of the requested size, the request's own when sizes match.
type GRPC struct {
	testpb.UnimplementedTestServiceServer
}

func (GRPC) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	body := req.GetPayload().GetBody()
	if n := int(req.GetResponseSize()); len(body) != n {
		body = make([]byte, n)
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

// Config says where the echo service serves.
type Config struct {
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

// Serve serves the echo service until ctx ends. ready is called once it
// serves everywhere it was asked to.
func Serve(ctx context.Context, cfg Config, ready func()) error {
	errc := make(chan error, 2)
	if cfg.HTTP != "" {
		l, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			return fmt.Errorf("benchecho: echo: %w", err)
		}
		srv := &http.Server{Handler: bulkHandler(Handler()), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.Serve(l) }()
		defer srv.Close()
	}
	if cfg.GRPC != "" {
		l, err := net.Listen("tcp", cfg.GRPC)
		if err != nil {
			return fmt.Errorf("benchecho: echo: %w", err)
		}
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(srv, GRPC{})
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go func() { errc <- srv.Serve(l) }()
		defer srv.Stop()
	}
	if cfg.NATS != "" {
		service := cfg.Service
		if service == "" {
			service = "echo"
		}
		// As a library user connects (the README's in-process example).
		nc, err := agent.Connect(ctx, service, agent.ConnectConfig{URL: cfg.NATS, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return fmt.Errorf("benchecho: echo: %w", err)
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
		if err := a.Handle(Handler()); err != nil {
			return err
		}
		testpb.RegisterTestServiceServer(a.GRPCServer(), GRPC{})
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
		return fmt.Errorf("benchecho: echo: %w", err)
	}
}

// bulkHandler serves the echo's downloads and uploads: GET /download?n=N
// writes N bytes (with their Content-Length), POST /upload reads its body
// and answers its length. Every other path is next's.
func bulkHandler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /download", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "benchecho: /download?n=BYTES", http.StatusBadRequest)
			return
		}
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.Header()["Content-Length"] = []string{strconv.FormatInt(n, 10)}
		NewBulkBody(n).WriteTo(w)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.CopyBuffer(io.Discard, r.Body, make([]byte, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header()["Content-Type"] = []string{"text/plain"}
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	mux.Handle("/", next)
	return mux
}

// bulkPattern is what bulk bodies repeat.
var bulkPattern = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
})

// bulkBody is n bytes of bulkPattern, read by copying (or written from
// it): neither side of a transfer spends its CPU making its bytes.
type bulkBody struct{ left int64 }

func NewBulkBody(n int64) *bulkBody { return &bulkBody{left: n} }

func (b *bulkBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.left)]
	n := 0
	for n < len(p) {
		n += copy(p[n:], bulkPattern())
	}
	b.left -= int64(n)
	return n, nil
}

func (b *bulkBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	pattern := bulkPattern()
	for b.left > 0 {
		n, err := w.Write(pattern[:min(int64(len(pattern)), b.left)])
		total += int64(n)
		b.left -= int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// StreamingOutputCall sends a message of each requested size, one after
// the other, as fast as the stream takes them (the intervals asked are
// not kept).
func (GRPC) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	var body []byte
	for _, p := range req.GetResponseParameters() {
		if n := int(p.GetSize()); len(body) != n {
			body = make([]byte, n)
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}
