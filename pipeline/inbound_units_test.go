package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestProtocols: each call goes to its protocol's handler; a protocol
// with none answers no-route naming the service.
func TestProtocols(t *testing.T) {
	ok := HandlerFunc(func(context.Context, *Call) (*Reply, error) { return httpReply(200, nil, nil, nil, wire.Limits{}) })
	p := Protocols{Service: "orders", HTTP: ok}
	if _, err := p.ServeCall(context.Background(), &Call{Proto: wire.ProtoHTTP}); err != nil {
		t.Errorf("HTTP call: %v", err)
	}
	_, err := p.ServeCall(context.Background(), &Call{Proto: wire.ProtoGRPC})
	if !errors.Is(err, wire.ErrNoRoute) || !strings.Contains(err.Error(), "orders serves no grpc") {
		t.Errorf("gRPC call to a service with no gRPC handler: %v, want no-route naming it", err)
	}
}

// TestInboundMiddlewareOrder: every inbound middleware runs, the first
// listed outermost.
func TestInboundMiddlewareOrder(t *testing.T) {
	b := meshtest.BareBroker(t)
	var mu sync.Mutex
	var order []string
	mark := func(name string) InboundMiddleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return next.ServeCall(ctx, c)
			})
		}
	}
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Middleware: []InboundMiddleware{mark("first"), mark("second")},
		Handler: HandlerFunc(func(context.Context, *Call) (*Reply, error) {
			return httpReply(200, nil, nil, nil, wire.Limits{})
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	if _, err := o.Send(context.Background(), httpCall(t, "orders", "GET")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, ","); got != "first,second" {
		t.Errorf("middleware ran %q, want first,second", got)
	}
}
