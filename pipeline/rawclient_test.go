package pipeline

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestRawClientFollowsTheDoc: a client written from docs/wire.md
// ("Streams") alone, with nats.go and no natsmesh code (the header names
// and frames are spelled here as the page spells them), makes a
// server-streaming call: it grants a small window, reads the head and the
// data frames in order by Mesh-Seq, grants credit as it reads, pings, and
// reads the end frame's trailer. The service streams more than the window,
// so the call completes only if the client's credit frames reach it.
func TestRawClientFollowsTheDoc(t *testing.T) {
	b := meshtest.BareBroker(t)
	const events = 40
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			n := 0
			src := newSource(func(ctx context.Context) ([]byte, error) {
				if n == events {
					return nil, io.EOF
				}
				n++
				return []byte("data: " + strings.Repeat("x", 1000) + " " + strconv.Itoa(n) + "\n\n"), nil
			})
			src.trailer = nats.Header{"Mesh-Trailer-X-Count": {strconv.Itoa(events)}}
			return NewStreamReply(c.Proto, nats.Header{"Mesh-Status": {"200"}, "Content-Type": {"text/event-stream"}}, src), nil
		}),
	})

	nc := meshtest.ServiceConn(t, b, "web")
	inbox := "_INBOX_mesh.web.orders.raw1.1-secret"
	frames := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(inbox, frames)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req := &nats.Msg{Subject: "mesh.orders._.web.http.GET", Reply: inbox, Header: nats.Header{
		"Mesh-Method": {"GET"}, "Mesh-Path": {"/events"},
		"Mesh-Stream": {"8192"}, "Mesh-Idle": {"30s"},
	}}
	if err := nc.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	var (
		out     string // the callee's inbox, from the head
		sent    int    // our frames' Mesh-Seq
		read    int    // bytes read since credit was last granted
		got     int    // events
		trailer string
	)
	send := func(kind string, h nats.Header) {
		sent++
		h.Set("Mesh-Frame", kind)
		h.Set("Mesh-Seq", strconv.Itoa(sent))
		if err := nc.PublishMsg(&nats.Msg{Subject: out, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(10 * time.Second)
	for want := 1; trailer == ""; want++ {
		var m *nats.Msg
		select {
		case m = <-frames:
		case <-timeout:
			t.Fatalf("stuck after %d events", got)
		}
		if seq := m.Header.Get("Mesh-Seq"); seq != strconv.Itoa(want) {
			t.Fatalf("frame %s, want %d", seq, want)
		}
		switch m.Header.Get("Mesh-Frame") {
		case "head":
			if m.Header.Get("Mesh-Status") != "200" || m.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("head %v", m.Header)
			}
			out = m.Header.Get("Mesh-Stream-Inbox")
			if !strings.HasPrefix(out, "_INBOX_mesh.orders.web.") {
				t.Fatalf("the callee's inbox %q", out)
			}
			send("ping", nats.Header{})
		case "data":
			got += strings.Count(string(m.Data), "data: ")
			read += len(m.Data)
			if read >= 4096 {
				send("credit", nats.Header{"Mesh-Credit": {strconv.Itoa(read)}})
				read = 0
			}
		case "ping":
		case "end":
			trailer = m.Header.Get("Mesh-Trailer-X-Count")
		default:
			t.Fatalf("frame %v", m.Header)
		}
	}
	if got != events || trailer != strconv.Itoa(events) {
		t.Errorf("%d events, trailer %q; want %d", got, trailer, events)
	}
}
