package bridge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// BenchmarkGatewayHTTP: HTTP client -> the gateway on its own listener
// (Serve: the framing guard, the route table) -> NATS -> an agent serving
// an in-process handler, all in this process, with 1 KiB bodies each way.
func BenchmarkGatewayHTTP(b *testing.B) {
	const size = 1024
	body := bytes.Repeat([]byte("x"), size)
	br := meshtest.Broker(b)
	quiet := slog.New(slog.DiscardHandler)
	agenttest.Start(b, br, agent.Config{Service: "echo"}, agenttest.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		w.Write(data)
	})))
	g, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:   meshtest.Conn(b, br, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes: []bridge.Route{{PathPrefix: "/", Service: "echo"}},
		Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve(l, nil)
	b.Cleanup(func() { g.Shutdown(context.Background()) })
	client := &http.Client{Transport: &http.Transport{}}
	b.Cleanup(client.CloseIdleConnections)
	url := "http://" + l.Addr().String() + "/echo"
	b.ReportAllocs()
	b.SetBytes(2 * size)
	cpu := processCPU(b)
	defer func() {
		if b.N > 0 {
			// As agent's benchmarks report it: the CPU the whole process
			// spent per call, which compares on a shared machine.
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
		}
	}()
	for b.Loop() {
		resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != size {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
