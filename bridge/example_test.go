package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/policies/live"
)

func ExampleParseRoute() {
	for _, s := range []string{"api.example.com=orders", "/v2/orders=orders@v2+strip", "/time=nats:svc.time"} {
		r, err := bridge.ParseRoute(s)
		fmt.Printf("host=%q prefix=%q service=%q subset=%q subject=%q strip=%v err=%v\n",
			r.Host, r.PathPrefix, r.Service, r.Subset, r.Subject, r.StripPrefix, err)
	}
	// Output:
	// host="api.example.com" prefix="" service="orders" subset="" subject="" strip=false err=<nil>
	// host="" prefix="/v2/orders" service="orders" subset="v2" subject="" strip=true err=<nil>
	// host="" prefix="/time" service="" subset="" subject="svc.time" strip=false err=<nil>
}

// An edge in front of a NATS-native endpoint: NewEdge listens, Start
// connects, Shutdown drains. The embedded broker stands in for any NATS
// deployment.
func ExampleEdge() {
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
	quiet := slog.New(slog.DiscardHandler)

	// A NATS-native endpoint: it answers svc.time.
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	nc.Subscribe("svc.time", func(m *nats.Msg) { m.Respond([]byte("12:00")) })
	nc.Flush()

	edge, err := bridge.NewEdge(bridge.EdgeConfig{
		Gateway: bridge.GatewayConfig{Routes: []bridge.Route{{PathPrefix: "/time", Subject: "svc.time"}}, Logger: quiet},
		Connect: bridge.ConnectConfig{URL: b.ClientURL(), Logger: quiet},
		Listen:  "127.0.0.1:0",
		Admin:   "127.0.0.1:0",
		Policy:  live.Off,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := edge.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer edge.Shutdown(context.Background())

	for _, url := range []string{"http://" + edge.Addr().String() + "/time", "http://" + edge.AdminAddr().String() + "/readyz"} {
		resp, err := http.Get(url)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// 200 12:00
	// 200 ready
}
