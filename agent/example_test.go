package agent_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
)

// Two services in one program, each with an in-process agent: "orders"
// serves HTTP and gRPC over NATS with no local hop, and "web" calls it with
// a plain http.Client and a generated gRPC client. The embedded broker
// stands in for any NATS deployment.
func Example() {
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:-1", HTTP: broker.HTTPOff, NoJetStream: true, LameDuckDuration: -1})
	if err != nil {
		log.Fatal(err)
	}
	if err := b.Start(); err != nil {
		log.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	if err := b.Ready(10 * time.Second); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	connect := agent.ConnectConfig{URL: b.ClientURL(), Logger: quiet}

	// The service: an http.Handler and a generated gRPC server.
	nc, err := agent.Connect(ctx, "orders", connect)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	orders, err := agent.New(nc, agent.Config{Service: "orders", Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	orders.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := agent.CallerFrom(r.Context())
		fmt.Fprintf(w, "%s %s from %s", r.Method, r.URL.Path, caller)
	}))
	healthpb.RegisterHealthServer(orders.GRPCServer(), health.NewServer())
	if err := orders.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer orders.Shutdown(ctx)
	if err := orders.Ready(10 * time.Second); err != nil {
		log.Fatal(err)
	}

	// The caller: its agent's Transport and ClientConn reach orders by name.
	wc, err := agent.Connect(ctx, "web", connect)
	if err != nil {
		log.Fatal(err)
	}
	defer wc.Close()
	web, err := agent.New(wc, agent.Config{Service: "web", Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if err := web.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer web.Shutdown(ctx)

	client := &http.Client{Transport: web.Transport()}
	resp, err := client.Get("http://orders/items/7")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	conn, err := web.ClientConn("orders")
	if err != nil {
		log.Fatal(err)
	}
	check, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(check.GetStatus())

	// No instance of a service: a mesh error, at once.
	resp, err = client.Get("http://nobody/")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Mesh-Error"))
	// Output:
	// 200 GET /items/7 from web
	// SERVING
	// 503 no-responders
}
