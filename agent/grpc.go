package agent

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"

	"github.com/natsmesh/natsmesh/internal/headerbudget"
	"github.com/natsmesh/natsmesh/meshgrpc"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// grpcWindow is the fixed HTTP/2 flow-control window of the agent's gRPC
// connections on loopback (the proxy listener and the upstream client).
// Setting it turns off grpc-go's dynamic window (BDP estimation), whose
// PING frames cost a write and a read per call when calls come one at a
// time. 1 MiB matches the broker's default max_payload, the largest message
// a unary call can carry over the mesh.
const grpcWindow = 1 << 20

// GRPCServer returns the registrar for in-process gRPC services: generated
// servers register on it (pb.RegisterOrdersServer(a.GRPCServer(), impl)) and
// are served over NATS with no local hop. Register before Start: like
// grpc.Server.RegisterService after Serve, a call after Start panics.
// Handlers find the caller with CallerFrom. Streaming methods are served
// too. The registrar is a *meshgrpc.Server, which lists its services as
// gRPC reflection needs them:
// reflection.RegisterV1(a.GRPCServer().(reflection.GRPCServer)) makes
// `grpcurl list` work through the mesh.
func (a *Agent) GRPCServer() grpc.ServiceRegistrar {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.closed {
		panic("agent: GRPCServer after Start or Shutdown")
	}
	if a.in.grpcServer == nil {
		a.in.grpcServer = meshgrpc.NewServer(meshgrpc.WithLimits(a.limitsNow))
	}
	return a.in.grpcServer
}

// ClientConn returns a connection for generated gRPC clients
// (pb.NewOrdersClient(conn)) whose calls, unary and streaming, go over the
// mesh, in process, from this agent's service, to dest: a service
// ("orders") or one subset of it ("v2.orders"), in the forms of
// wire.ParseHost.
func (a *Agent) ClientConn(dest string) (grpc.ClientConnInterface, error) {
	service, subset, err := wire.ParseHost(dest, a.cfg.Domains)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &meshgrpc.Client{Sender: a.send, Caller: a.cfg.Service, Service: service, Subset: subset, Limits: a.limitsNow}, nil
}

// ServeGRPCProxy serves the outbound gRPC proxy on l until Shutdown: an h2c
// listener that forwards any method, unary or streaming, with no generated
// code, to the service named by the call's :authority
// (grpc.NewClient("orders:15002"), grpc.WithAuthority("orders") or
// "v2.orders"). Shutdown lets the calls in flight finish, streams
// included, until its context ends, then cancels them. It returns nil
// after Shutdown.
func (a *Agent) ServeGRPCProxy(l net.Listener) error {
	p := a.grpcProxy(nil)
	srv := grpc.NewServer(append(p.ServerOptions(),
		grpc.InitialWindowSize(grpcWindow), grpc.InitialConnWindowSize(grpcWindow))...)
	stopper := func(ctx context.Context) error {
		done := make(chan struct{})
		go func() {
			srv.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			srv.Stop()
			return ctx.Err()
		}
	}
	if !a.out.track(stopper) {
		l.Close()
		return ErrClosed
	}
	// Each connection with its budget of held headers.
	if err := srv.Serve(headerbudget.Listen(l)); err != nil && err != grpc.ErrServerStopped {
		return err
	}
	return nil
}

// grpcUpstream serves inbound gRPC calls from the h2c upstream.
func (in *inbound) grpcUpstream(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	cc, err := in.grpcConn()
	if err != nil {
		return nil, &wire.Error{Kind: wire.KindUpstream, Message: err.Error(), Err: err}
	}
	return (&meshgrpc.Upstream{Conn: cc, Limits: in.limits, OnRefused: in.onRefused}).ServeCall(ctx, c)
}
