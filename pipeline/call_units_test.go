package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// TestCallNames: how a call names its destination for people and on the
// wire, for a service, one of its subsets, and a plain NATS subject.
func TestCallNames(t *testing.T) {
	for _, tc := range []struct {
		c             Call
		dest, subject string
	}{
		{Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}, "orders", "mesh.orders._.web.http.GET"},
		{Call{Service: "orders", Subset: "v2", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}, "orders@v2", "mesh.orders.v2.web.http.GET"},
		{Call{Subject: "legacy.orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}, "legacy.orders", "legacy.orders"},
	} {
		if got := tc.c.Dest(); got != tc.dest {
			t.Errorf("Dest() = %q, want %q", got, tc.dest)
		}
		if got := tc.c.MeshSubject(); got != tc.subject {
			t.Errorf("MeshSubject() = %q, want %q", got, tc.subject)
		}
		if m := tc.c.Msg(); m.Subject != tc.subject {
			t.Errorf("Msg().Subject = %q, want %q", m.Subject, tc.subject)
		}
	}
}

// TestCallMsg: an outbound call's message is made of its header and
// body; a received call's is the received message, and its clone's
// carries the clone's header.
func TestCallMsg(t *testing.T) {
	out := &Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "POST",
		Header: nats.Header{"A": {"1"}}, Body: Body{Bytes: []byte("hi")}}
	if m := out.Msg(); m.Header.Get("A") != "1" || string(m.Data) != "hi" {
		t.Errorf("outbound Msg() = %+v", m)
	}
	recv := &nats.Msg{Subject: "mesh.orders._.web.http.POST", Reply: "_INBOX_mesh.web.orders.x", Header: nats.Header{"A": {"1"}}, Data: []byte("hi")}
	in := &Call{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "POST", Header: recv.Header, msg: recv}
	if in.Msg() != recv {
		t.Error("a received call's Msg() is not the received message")
	}
	d := in.Clone()
	d.Header.Set("B", "2")
	if m := d.Msg(); m == recv || m.Reply != recv.Reply || m.Header.Get("B") != "2" || string(m.Data) != "hi" {
		t.Errorf("the clone's Msg() = %+v", m)
	}
	if recv.Header.Get("B") != "" {
		t.Error("the clone wrote the received message's header")
	}
}

// TestCloseBody: a whole body needs nothing; a stream is closed at once
// after an error or a whole reply, and at the end of a streamed reply.
func TestCloseBody(t *testing.T) {
	(&Call{Body: Body{Bytes: []byte("x")}}).CloseBody(nil, nil) // no stream: nothing to close

	for _, tc := range []struct {
		name  string
		reply *Reply
		err   error
	}{
		{"error", nil, errors.New("failed")},
		{"whole reply", ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil},
	} {
		p := newPieces(nil, "a")
		(&Call{Body: Body{Stream: p}}).CloseBody(tc.reply, tc.err)
		if p.closed != 1 {
			t.Errorf("%s: the call's stream closed %d times, want 1", tc.name, p.closed)
		}
	}

	p := newPieces(nil, "a")
	reply := NewStreamReply(wire.ProtoHTTP, nats.Header{wire.HeaderStatus: {"200"}}, newPieces(nil, "b"))
	(&Call{Body: Body{Stream: p}}).CloseBody(reply, nil)
	if p.closed != 0 {
		t.Fatal("the call's stream closed before its streamed reply ended")
	}
	readAll(t, reply.Body.Stream)
	if p.closed != 1 {
		t.Errorf("the call's stream closed %d times at its reply's end, want 1", p.closed)
	}
}

// TestHeaderValue: looked up as HTTP does, case-insensitively, its first
// value; a name with no values is absent.
func TestHeaderValue(t *testing.T) {
	c := &Call{Header: nats.Header{
		"X-Exact":   {"exact", "second"},
		"X-Canon":   {"canon"},
		"x-LOWER":   {"lower"},
		"X-Empty":   {},
		"x-empty-2": {},
	}}
	for name, want := range map[string]string{
		"X-Exact":   "exact",
		"x-canon":   "canon",
		"X-Lower":   "lower",
		"x-lower":   "lower",
		"X-Empty":   "",
		"x-empty":   "",
		"X-Empty-2": "",
		"X-Missing": "",
	} {
		if got := c.HeaderValue(name); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestContextMarks: the route, the attempt and the limits read back as
// set, and their absence as absent.
func TestContextMarks(t *testing.T) {
	ctx := context.Background()
	if r, ok := RouteFrom(ctx); ok || r != "" {
		t.Errorf("RouteFrom(no route) = %q, %v", r, ok)
	}
	if r, ok := RouteFrom(WithRoute(ctx, "")); ok || r != "" {
		t.Errorf(`RouteFrom(route "") = %q, %v`, r, ok)
	}
	if r, ok := RouteFrom(WithRoute(ctx, "api")); !ok || r != "api" {
		t.Errorf(`RouteFrom(route "api") = %q, %v`, r, ok)
	}
	if got := Limits(nil).Now(); got != (wire.Limits{}) {
		t.Errorf("Limits(nil).Now() = %+v, want wire's defaults", got)
	}
	want := wire.Limits{MaxPayload: 1234}
	if got := Limits(func() wire.Limits { return want }).Now(); got != want {
		t.Errorf("Limits.Now() = %+v, want %+v", got, want)
	}
}

// TestOutcomeOfError: a call that failed ends as its mesh error says, a
// call with neither reply nor error as wire reads none; a reply as its
// own outcome.
func TestOutcomeOfError(t *testing.T) {
	err := &wire.Error{Kind: wire.KindTimeout, Message: "late"}
	if got, want := OutcomeOf(wire.ProtoHTTP, nil, err), wire.OutcomeOf(wire.ProtoHTTP, nil, err); got != want {
		t.Errorf("OutcomeOf(error) = %+v, want %+v", got, want)
	}
	reply := ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"201"}}})
	if got := OutcomeOf(wire.ProtoHTTP, reply, err); got == reply.Outcome() {
		t.Errorf("OutcomeOf(reply, error) = %+v: the reply's, not the error's", got)
	}
	if got := OutcomeOf(wire.ProtoHTTP, reply, nil); got != reply.Outcome() || got.Code != 201 {
		t.Errorf("OutcomeOf(reply) = %+v, want the reply's (201)", got)
	}
	if got, want := OutcomeOf(wire.ProtoHTTP, nil, nil), wire.OutcomeOf(wire.ProtoHTTP, nil, nil); got != want {
		t.Errorf("OutcomeOf(nil, nil) = %+v, want %+v", got, want)
	}
	if m := reply.Msg(); m.Header.Get(wire.HeaderStatus) != "201" {
		t.Errorf("a whole reply's Msg() = %+v", m)
	}
	made := &Reply{Header: nats.Header{"A": {"1"}}, Body: Body{Bytes: []byte("x")}}
	if m := made.Msg(); m.Header.Get("A") != "1" || string(m.Data) != "x" {
		t.Errorf("a made reply's Msg() = %+v", m)
	}
	if m := NewStreamReply(wire.ProtoHTTP, nil, newPieces(nil)).Msg(); m != nil {
		t.Errorf("a streamed reply's Msg() = %+v, want nil", m)
	}
}

// TestIdempotentByMethod: HTTP's safe and idempotent methods are; no gRPC
// method is, whatever its name.
func TestIdempotentByMethod(t *testing.T) {
	for _, tc := range []struct {
		proto wire.Proto
		op    string
		want  bool
	}{
		{wire.ProtoHTTP, "GET", true},
		{wire.ProtoHTTP, "DELETE", true},
		{wire.ProtoHTTP, "POST", false},
		{wire.ProtoGRPC, "GET", false},
		{wire.ProtoGRPC, "/pkg.Svc/Get", false},
	} {
		if got := (&Call{Proto: tc.proto, Op: tc.op}).Idempotent(); got != tc.want {
			t.Errorf("%s %s: Idempotent() = %v, want %v", tc.proto, tc.op, got, tc.want)
		}
	}
}

// TestReplyMessage: a gRPC reply, whole or streamed, carries its status
// message; an HTTP reply carries none, whatever its header holds.
func TestReplyMessage(t *testing.T) {
	h := nats.Header{wire.HeaderGRPCStatus: {"5"}, "Mesh-Grpc-Message": {"no such order"}, wire.HeaderStatus: {"200"}}
	for _, tc := range []struct {
		name  string
		reply *Reply
		want  string
	}{
		{"gRPC whole", ReplyFromMsg(wire.ProtoGRPC, &nats.Msg{Header: h}), "no such order"},
		{"gRPC streamed", NewStreamReply(wire.ProtoGRPC, h, newPieces(nil)), "no such order"},
		{"HTTP whole", ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: h}), ""},
		{"HTTP streamed", NewStreamReply(wire.ProtoHTTP, h, newPieces(nil)), ""},
	} {
		if tc.reply.Message != tc.want {
			t.Errorf("%s: Message %q, want %q", tc.name, tc.reply.Message, tc.want)
		}
	}
}

// TestReadStreamLimit: a streamed body read whole may reach its limit,
// counted over all its pieces, not pass it.
func TestReadStreamLimit(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		ok    bool
	}{{6, true}, {7, true}, {5, false}, {3, false}} {
		b, _, err := readStream(context.Background(), newPieces(nil, "abc", "def"), tc.limit)
		if tc.ok != (err == nil) || tc.ok && string(b) != "abcdef" {
			t.Errorf("limit %d: %q, %v", tc.limit, b, err)
		}
		if !tc.ok && !errors.Is(err, wire.ErrTooLarge) {
			t.Errorf("limit %d: %v, want too-large", tc.limit, err)
		}
	}
}
