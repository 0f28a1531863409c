package grpcstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// A pipe's writer does not wait for its reader while the pieces fit in
// PipeBuffer, and the reader takes them all, in order, as one piece: a
// stream of small messages becomes fewer, larger frames.
func TestPipeJoinsWaitingPieces(t *testing.T) {
	p := NewPipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var want []byte
	for i := range 3 {
		piece := bytes.Repeat([]byte{byte('a' + i)}, 1024)
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		err := p.Write(wctx, piece)
		wcancel()
		if err != nil {
			t.Fatalf("write %d with no reader: %v", i, err)
		}
		want = append(want, piece...)
	}
	got, err := p.Next(ctx)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Next = %d bytes, %v; want the three pieces joined (%d bytes)", len(got), err, len(want))
	}
	// Past PipeBuffer, the writer waits for the reader.
	if err := p.Write(ctx, make([]byte, PipeBuffer)); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = p.Write(wctx, []byte("x"))
	wcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write past PipeBuffer = %v, want it to wait for the reader", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Write(ctx, []byte("y")) }()
	if b, err := p.Next(ctx); err != nil || len(b) != PipeBuffer {
		t.Fatalf("Next = %d bytes, %v", len(b), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write once the reader took the pieces: %v", err)
	}
	p.End(nil, nil)
	if b, err := p.Next(ctx); err != nil || string(b) != "y" {
		t.Fatalf("Next = %q, %v; want the last piece before the end", b, err)
	}
	if _, err := p.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the end = %v, want io.EOF", err)
	}
	p.Close()
	if err := p.Write(ctx, []byte("z")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close = %v, want ErrClosed", err)
	}
}
