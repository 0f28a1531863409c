package traffic_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/traffic"
	"github.com/natsmesh/natsmesh/wire"
)

// once is a Stream of one piece.
type once struct {
	mu     sync.Mutex
	done   bool
	closed bool
}

func (s *once) Next(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, io.EOF
	}
	s.done = true
	return []byte("x"), nil
}

func (s *once) Trailer() nats.Header { return nil }

func (s *once) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// TestMirrorReplaysTheBody: a mirror copy reads the call's body again
// (its own stream from Body.Replay, closed once the copy is answered); a
// call whose body cannot be replayed is not mirrored.
func TestMirrorReplaysTheBody(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(mirrorFile))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	sent := map[string][]pipeline.Stream{}
	terminal := pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		mu.Lock()
		sent[c.Service] = append(sent[c.Service], c.Body.Stream)
		mu.Unlock()
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
	})
	s := traffic.Routing(traffic.Config{Service: "web", Policies: live.Static(f)})(terminal)
	post := func(body pipeline.Body) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c := &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: http.MethodPost, Path: "/x", Body: body}
		if _, err := s.Send(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	count := func(service string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent[service])
	}

	post(pipeline.Body{Stream: &once{}})
	time.Sleep(50 * time.Millisecond) // a copy, were one sent, would have been by now
	if count("orders") != 1 || count("shadow") != 0 {
		t.Fatalf("a body that cannot be replayed: orders got %d, shadow %d; want 1 and none", count("orders"), count("shadow"))
	}

	own, replay := &once{}, &once{}
	post(pipeline.Body{Stream: own, Replay: func() (pipeline.Stream, error) { return replay, nil }})
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if count("shadow") != 1 {
			return io.ErrNoProgress
		}
		mu.Lock()
		defer mu.Unlock()
		if sent["shadow"][0] != replay || sent["orders"][1] != own {
			t.Fatal("the copy did not get the replay, or the call not its own stream")
		}
		replay.mu.Lock()
		defer replay.mu.Unlock()
		if !replay.closed {
			return io.ErrNoProgress
		}
		return nil
	})
}
