package meshgrpc_test

import (
	"context"
	"log"
	"net"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/natsmesh/natsmesh/meshgrpc"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// serve answers service's subjects on nc with h, through an inbound
// pipeline (what an agent does for its service).
func serve(nc *nats.Conn, service string, h pipeline.Handler) {
	in, err := pipeline.NewInbound(nc, pipeline.InboundConfig{Service: service, Handler: h})
	if err != nil {
		log.Fatal(err)
	}
	subjects, queues := wire.ServiceSubjects(service, "")
	for i := range subjects {
		if _, err := nc.QueueSubscribe(subjects[i], queues[i], in.ServeMsg); err != nil {
			log.Fatal(err)
		}
	}
}

// Generated gRPC code runs over NATS in-process: the server side registers
// on a Server, which serves the service's inbound calls; the client side
// passes a Client where a *grpc.ClientConn would go. (The agent package
// wires these for you: Agent.GRPCServer and Agent.ClientConn.)
func Example_inProcess() {
	nc, err := nats.Connect(nats.DefaultURL, nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// Server: instances of "orders" share the work through queue groups.
	srv := meshgrpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	serve(nc, "orders", srv)

	// Client: "web" calls "orders" through its outbound pipeline.
	out, err := pipeline.NewOutbound(nc, pipeline.OutboundConfig{})
	if err != nil {
		log.Fatal(err)
	}
	client := healthpb.NewHealthClient(&meshgrpc.Client{Sender: out, Caller: "web", Service: "orders"})
	resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	log.Println(resp.Status)

	// Streams too: Watch sends the status, then each change, for as long
	// as the caller watches (cancel ends it on both sides).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	for {
		resp, err := watch.Recv()
		if err != nil {
			log.Fatal(err)
		}
		log.Println(resp.Status)
	}
}

// The sidecar form: the agent of "web" listens for any gRPC client (the
// destination service as :authority), and the agent of "orders" forwards to
// its local gRPC server; neither needs the services' generated code.
func Example_sidecar() {
	nc, err := nats.Connect(nats.DefaultURL, nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// Inbound, in the agent of "orders": NATS -> local gRPC server (h2c).
	local, err := grpc.NewClient("127.0.0.1:9090", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	serve(nc, "orders", &meshgrpc.Upstream{Conn: local, Limits: pipeline.ConnLimits(nc)})

	// Outbound, in the agent of "web": clients dial 127.0.0.1:15002 with
	// grpc.WithAuthority("orders").
	out, err := pipeline.NewOutbound(nc, pipeline.OutboundConfig{})
	if err != nil {
		log.Fatal(err)
	}
	proxy := &meshgrpc.Proxy{Sender: out, Caller: "web", Limits: pipeline.ConnLimits(nc)}
	lis, err := net.Listen("tcp", "127.0.0.1:15002")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(grpc.NewServer(proxy.ServerOptions()...).Serve(lis))
}
