package bridge_test

import (
	"context"
	"log"
	"net"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/natsmesh/natsmesh/bridge"
)

// Generated gRPC code runs over NATS in-process: the server side registers
// on a GRPCServer and answers the service's subjects, the client side passes
// a GRPCClient where a *grpc.ClientConn would go.
func Example_grpcInProcess() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// Server: instances of "orders" share the work through queue groups.
	srv := bridge.NewGRPCServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	subjects, queues := bridge.ServiceSubjects("orders", "")
	for i := range subjects {
		if _, err := nc.QueueSubscribe(subjects[i], queues[i], func(m *nats.Msg) {
			_ = m.RespondMsg(srv.ServeMsg(context.Background(), m))
		}); err != nil {
			log.Fatal(err)
		}
	}

	// Client: "web" calls "orders".
	client := healthpb.NewHealthClient(&bridge.GRPCClient{Request: bridge.Requester(nc), Caller: "web", Service: "orders"})
	resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	log.Println(resp.Status)
}

// The sidecar form: the agent of "web" listens for any gRPC client (the
// destination service as :authority), and the agent of "orders" forwards to
// its local gRPC server; neither needs the services' generated code.
func Example_grpcSidecar() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// Inbound, in the agent of "orders": NATS -> local gRPC server (h2c).
	local, err := grpc.NewClient("127.0.0.1:9090", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := nc.QueueSubscribe("mesh.orders._.>", "orders", func(m *nats.Msg) {
		_ = m.RespondMsg(bridge.ServeGRPCUpstream(context.Background(), local, m, bridge.Limits{MaxPayload: nc.MaxPayload()}))
	}); err != nil {
		log.Fatal(err)
	}

	// Outbound, in the agent of "web": clients dial 127.0.0.1:15002 with
	// grpc.WithAuthority("orders").
	proxy := &bridge.GRPCProxy{Request: bridge.Requester(nc), Caller: "web", Limits: bridge.Limits{MaxPayload: nc.MaxPayload()}}
	lis, err := net.Listen("tcp", "127.0.0.1:15002")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(grpc.NewServer(proxy.ServerOptions()...).Serve(lis))
}
