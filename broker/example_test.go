package broker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
)

// A broker on a random loopback port, a responder and a request, all in
// one process.
func Example() {
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:-1", HTTP: broker.HTTPOff, NoJetStream: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Shutdown(context.Background())
	if err := b.Start(); err != nil {
		fmt.Println(err)
		return
	}
	if err := b.Ready(5 * time.Second); err != nil {
		fmt.Println(err)
		return
	}

	nc, err := b.InProcessConn()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	nc.Subscribe("greet", func(m *nats.Msg) { m.Respond([]byte("hello, " + string(m.Data))) })
	reply, err := nc.Request("greet", []byte("mesh"), time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))
	// Output: hello, mesh
}
