package grpcwire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/wire"
)

// readAll feeds body to a MessageReader in pieces of size n (the whole
// body when n is 0) and returns the messages.
func readAll(t testing.TB, body []byte, n, max int) ([][]byte, error) {
	t.Helper()
	r := MessageReader{Max: max}
	var msgs [][]byte
	for len(body) > 0 {
		k := len(body)
		if n > 0 && n < k {
			k = n
		}
		r.Feed(body[:k])
		body = body[k:]
		for {
			m, ok, err := r.Next()
			if err != nil {
				return msgs, err
			}
			if !ok {
				break
			}
			msgs = append(msgs, m)
		}
	}
	if r.Partial() {
		return msgs, errors.New("truncated")
	}
	return msgs, nil
}

func TestMessageReader(t *testing.T) {
	want := [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0xff}, 70000), []byte("x")}
	var body []byte
	for _, m := range want {
		body = AppendMessage(body, m)
	}
	for _, n := range []int{0, 1, 2, 4, 5, 6, 7, 1000, 65536} {
		got, err := readAll(t, body, n, 0)
		if err != nil {
			t.Fatalf("pieces of %d: %v", n, err)
		}
		if len(got) != len(want) {
			t.Fatalf("pieces of %d: %d messages, want %d", n, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("pieces of %d: message %d differs", n, i)
			}
		}
	}

	t.Run("messages are their own", func(t *testing.T) {
		piece := AppendMessage(nil, []byte("abc"))
		var r MessageReader
		r.Feed(piece)
		m, ok, err := r.Next()
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		piece[MessagePrefixLen] = 'z'
		if string(m) != "abc" {
			t.Errorf("the message shares the piece's bytes: %q", m)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, body := range [][]byte{{0}, {0, 0, 0, 0, 3, 'a'}} {
			if _, err := readAll(t, body, 0, 0); err == nil {
				t.Errorf("%q read without error", body)
			}
		}
	})
	t.Run("compressed", func(t *testing.T) {
		_, err := readAll(t, []byte{1, 0, 0, 0, 1, 'a'}, 0, 0)
		if wire.FromError(err).Kind != wire.KindBadRequest {
			t.Errorf("got %v, want bad-request", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := readAll(t, AppendMessage(nil, make([]byte, 11)), 3, 10)
		if wire.FromError(err).Kind != wire.KindTooLarge {
			t.Errorf("got %v, want too-large", err)
		}
		// The default bound is gRPC's; the reader allocates nothing for
		// a length past it.
		_, err = readAll(t, []byte{0, 0xff, 0xff, 0xff, 0xff}, 0, 0)
		if wire.FromError(err).Kind != wire.KindTooLarge {
			t.Errorf("got %v, want too-large", err)
		}
	})
}

// FuzzMessageReader: any body, in any pieces, reads as the same messages
// as whole, and what it reads frames back to the body.
func FuzzMessageReader(f *testing.F) {
	f.Add(AppendMessage(AppendMessage(nil, []byte("ab")), nil), 1)
	f.Add([]byte{0, 0, 0, 0, 2, 'a'}, 3)
	f.Add([]byte{1, 0, 0, 0, 0}, 2)
	f.Add([]byte{0, 0, 0x10, 0, 0, 1, 2}, 4)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 {
			n = -n
		}
		whole, werr := readAll(t, body, 0, 1<<16)
		split, serr := readAll(t, body, n%17, 1<<16)
		if (werr == nil) != (serr == nil) || len(whole) != len(split) {
			t.Fatalf("whole: %d, %v; in pieces of %d: %d, %v", len(whole), werr, n%17, len(split), serr)
		}
		if werr != nil {
			return
		}
		var again []byte
		for i := range whole {
			if !bytes.Equal(whole[i], split[i]) {
				t.Fatalf("message %d differs", i)
			}
			again = AppendMessage(again, whole[i])
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("framed again %q, want %q", again, body)
		}
	})
}

func TestStreamRequestMarker(t *testing.T) {
	body := AppendMessage(nil, []byte("m"))
	m, err := EncodeRequest(&Request{Method: "/a.B/C", Stream: true, Payload: body}, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderGRPCStream) != "1" {
		t.Fatalf("header %v", m.Header)
	}
	req, err := DecodeCall(m.Header, m.Data, "/a.B/C")
	if err != nil || !req.Stream || !bytes.Equal(req.Payload, body) {
		t.Fatalf("decoded %+v, %v", req, err)
	}
	if _, ok := req.Metadata[stringsToLower(HeaderGRPCStream)]; ok {
		t.Errorf("the marker is metadata: %v", req.Metadata)
	}
	m, _ = EncodeRequest(&Request{Method: "/a.B/C"}, wire.Limits{})
	if req, err := DecodeCall(m.Header, nil, ""); err != nil || req.Stream {
		t.Errorf("unary decoded as stream %v, %v", req, err)
	}
	for _, v := range [][]string{{"0"}, {"yes"}, {"1", "1"}, {""}} {
		h := nats.Header{HeaderGRPCMethod: {"/a.B/C"}, HeaderGRPCStream: v}
		if _, err := DecodeCall(h, nil, ""); wire.FromError(err).Kind != wire.KindBadRequest {
			t.Errorf("%s %q: got %v, want bad-request", HeaderGRPCStream, v, err)
		}
	}
}

func stringsToLower(s string) string { return string(bytes.ToLower([]byte(s))) }

// TestStreamHeadAndTrailer: a streamed reply's head and trailer, put
// together, decode as a unary reply's header would.
func TestStreamHeadAndTrailer(t *testing.T) {
	head, err := StreamHead(metadata.Pairs("x-h", "1", "h-bin", "\x00"), wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if head.Get(HeaderGRPCStatus) != "" {
		t.Errorf("the head has a status: %v", head)
	}
	st := status.New(codes.Aborted, "try\nagain")
	trailer, err := StreamTrailer(st, metadata.Pairs("x-t", "2"), wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	for k, vs := range head {
		h[k] = vs
	}
	for k, vs := range trailer {
		h[k] = vs
	}
	resp, err := DecodeResponse(&nats.Msg{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status.Code() != codes.Aborted || resp.Status.Message() != "try\nagain" {
		t.Errorf("status %v", resp.Status)
	}
	if resp.Header.Get("x-h")[0] != "1" || resp.Header.Get("h-bin")[0] != "\x00" || resp.Trailer.Get("x-t")[0] != "2" || len(resp.Trailer.Get("x-h")) != 0 {
		t.Errorf("header %v trailer %v", resp.Header, resp.Trailer)
	}
	if trailer, err := StreamTrailer(nil, nil, wire.Limits{}); err != nil || trailer.Get(HeaderGRPCStatus) != "0" {
		t.Errorf("OK trailer %v, %v", trailer, err)
	}
	many := metadata.MD{}
	for i := range 200 {
		many.Append("k", string(rune('a'+i%26)))
	}
	if _, err := StreamHead(many, wire.Limits{}); wire.FromError(err).Kind != wire.KindHeadersTooLarge {
		t.Errorf("200 values: %v", err)
	}
}

func TestFramedCodec(t *testing.T) {
	var f Framed
	data := mem.BufferSlice{mem.SliceBuffer("ab"), mem.SliceBuffer("c")}
	if err := (RawCodec{}).Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f, AppendMessage(nil, []byte("abc"))) {
		t.Fatalf("framed %q", f)
	}
	out, err := (RawCodec{}).Marshal(f)
	if err != nil || string(out.Materialize()) != "abc" {
		t.Fatalf("marshaled %q, %v", out.Materialize(), err)
	}
	if _, err := (RawCodec{}).Marshal(Framed{0, 0}); err == nil {
		t.Error("a Framed without its prefix marshaled")
	}
}
