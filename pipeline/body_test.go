package pipeline

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
)

// pieces is a Stream of the given pieces then trailer, counting what its
// reader asked of it.
type pieces struct {
	parts   [][]byte
	trailer nats.Header
	err     error // returned instead of io.EOF, when set

	mu       sync.Mutex
	next     int
	trailers int // calls of Trailer
	closed   int // calls of Close
}

func newPieces(trailer nats.Header, parts ...string) *pieces {
	p := &pieces{trailer: trailer}
	for _, s := range parts {
		p.parts = append(p.parts, []byte(s))
	}
	return p
}

func (p *pieces) Next(ctx context.Context) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.closed > 0 {
		return nil, errors.New("pieces: closed")
	}
	if p.next < len(p.parts) {
		p.next++
		return p.parts[p.next-1], nil
	}
	if p.err != nil {
		return nil, p.err
	}
	return nil, io.EOF
}

func (p *pieces) Trailer() nats.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trailers++
	return p.trailer
}

func (p *pieces) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed++
	return nil
}

// readAll reads s to its end: the pieces, joined.
func readAll(t *testing.T, s Stream) string {
	t.Helper()
	var b []byte
	for {
		p, err := s.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return string(b)
		}
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		b = append(b, p...)
	}
}

// TestCallReplay: a clone shares the body; a replay reads a stream again
// from Body.Replay, shares a whole body's bytes, and refuses a stream that
// cannot be replayed.
func TestCallReplay(t *testing.T) {
	whole := &Call{Service: "orders", Header: nats.Header{"A": {"1"}}, Body: Body{Bytes: []byte("abc")}}
	d, err := whole.Replay()
	if err != nil || string(d.Body.Bytes) != "abc" {
		t.Fatalf("whole body: %+v, %v", d, err)
	}
	if d.Header["B"] = []string{"2"}; whole.Header.Get("B") != "" {
		t.Error("a replay shares its call's header map")
	}
	if !whole.Body.Replayable() || whole.Body.Streamed() {
		t.Error("a whole body is replayable and not streamed")
	}

	first := newPieces(nil, "a", "b")
	replays := 0
	streamed := &Call{Service: "orders", Body: Body{Stream: first, Replay: func() (Stream, error) {
		replays++
		return newPieces(nil, "a", "b"), nil
	}}}
	if c := streamed.Clone(); c.Body.Stream != first {
		t.Error("a clone does not share its call's stream")
	}
	d, err = streamed.Replay()
	if err != nil {
		t.Fatal(err)
	}
	if d.Body.Stream == first || replays != 1 {
		t.Fatalf("a replay's stream is the call's own (replays %d)", replays)
	}
	if got := readAll(t, d.Body.Stream); got != "ab" {
		t.Errorf("replayed body %q", got)
	}

	once := &Call{Service: "orders", Body: Body{Stream: newPieces(nil, "x")}}
	if once.Body.Replayable() {
		t.Error("a stream without Replay is replayable")
	}
	if _, err := once.Replay(); !errors.Is(err, ErrNotReplayable) {
		t.Errorf("replay of a stream without Replay: %v", err)
	}
}
