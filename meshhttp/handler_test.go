package meshhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

func TestServeHTTPMsg(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
		kind    wire.Kind
		header  http.Header
		body    string
		trailer http.Header
	}{
		{name: "writes nothing", handler: func(http.ResponseWriter, *http.Request) {}, status: 200, header: http.Header{}},
		{name: "panics", handler: func(http.ResponseWriter, *http.Request) { panic("boom") }, kind: wire.KindInternal},
		{name: "aborts", handler: func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, kind: wire.KindUpstream},
		{name: "panics after writing", handler: func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("half")); panic("boom") }, kind: wire.KindInternal},
		{name: "status and body", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(201)
			w.Write([]byte("made"))
			w.Header().Set("X-Late", "ignored")
		}, status: 201, header: http.Header{"Content-Type": {"text/plain"}}, body: "made"},
		{name: "sniffs content type", handler: func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>")) }, status: 200, header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}, body: "<html>"},
		{name: "informational then final", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
			w.WriteHeader(202)
		}, status: 202, header: http.Header{"Link": {"</a.css>; rel=preload"}}},
		{name: "declared and prefixed trailers", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("data"))
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		}, status: 200, header: http.Header{"Content-Type": {"text/plain"}}, body: "data", trailer: http.Header{"X-Sum": {"42"}, "X-Late": {"yes"}}},
		{name: "service Status header", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Status", "503")
			w.WriteHeader(503)
		}, status: 503, header: http.Header{"Status": {"503"}}},
		{name: "invalid header names are dropped", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set(http.TrailerPrefix+"Early", "set before WriteHeader")
			w.Header()["Bad Name"] = []string{"x"}
			w.Header().Set("Ok", "1")
		}, status: 200, header: http.Header{"Ok": {"1"}}, trailer: http.Header{"Early": {"set before WriteHeader"}}},
		{name: "sees deadline and caller headers", handler: func(w http.ResponseWriter, r *http.Request) {
			if _, ok := r.Context().Deadline(); !ok {
				w.WriteHeader(500)
				return
			}
			w.Header().Set("X-Echo", r.Header.Get("X-In"))
		}, status: 200, header: http.Header{"X-Echo": {"in"}}},
	}
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "test")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("X-In", "in")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, err := encodeHTTPAt(r.WithContext(ctx), "mesh.a._.b.http.GET", wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			reply := serveHTTPMsg(context.Background(), tt.handler, meshtest.ViaNATS(t, nc, req), wire.Limits{})
			// Every reply must be publishable; check what the caller gets.
			resp, err := httpwire.DecodeResponse(meshtest.ViaNATS(t, nc, reply))
			if tt.kind != "" {
				var me *wire.Error
				if !errors.As(err, &me) || me.Kind != tt.kind {
					t.Fatalf("got %v, %v; want mesh error %s", resp, err, tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			want := tt.header.Clone()
			want.Set("Content-Length", fmt.Sprint(len(tt.body)))
			if resp.StatusCode != tt.status || string(body) != tt.body || !reflect.DeepEqual(resp.Header, want) || !reflect.DeepEqual(resp.Trailer, tt.trailer) {
				t.Fatalf("got %d %q %v trailer %v; want %d %q %v trailer %v", resp.StatusCode, body, resp.Header, resp.Trailer, tt.status, tt.body, want, tt.trailer)
			}
		})
	}
	t.Run("not an HTTP request", func(t *testing.T) {
		_, err := httpwire.DecodeResponse(serveHTTPMsg(context.Background(), http.NotFoundHandler(), &nats.Msg{Data: []byte("x")}, wire.Limits{}))
		if !errors.Is(err, wire.ErrBadRequest) {
			t.Fatalf("got %v, want bad-request", err)
		}
	})
	t.Run("answer too large to cross whole", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			for range 100 { // would be 400 KiB: streamed, the stream read whole stops it
				if _, err := w.Write(make([]byte, 4096)); err != nil {
					return
				}
			}
			t.Error("writes past max_payload kept succeeding")
		})
		m := &nats.Msg{Header: nats.Header{wire.HeaderMethod: {"GET"}}}
		_, err := httpwire.DecodeResponse(serveHTTPMsg(context.Background(), h, m, wire.Limits{MaxPayload: 1024}))
		// The service's answer is too large: its failure (502), not the
		// caller's (413).
		if !errors.Is(err, wire.ErrUpstream) || !strings.Contains(err.Error(), "response") {
			t.Fatalf("got %v, want upstream-unavailable naming the response", err)
		}
	})
}

// TestServeHTTPMsgBoundsTheBody: a handler that writes without end
// streams its answer, each write waiting for its reader: when the reader
// gives up (here, the stream read whole past max_payload), the handler's
// writes fail and it stops, having held no more than a piece.
func TestServeHTTPMsgBoundsTheBody(t *testing.T) {
	writeErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		var err error
		for i := 0; i < 1000 && err == nil; i++ { // 64 MiB if nothing stopped it
			_, err = w.Write(chunk)
		}
		writeErr <- err
	})
	m := &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}
	reply := serveHTTPMsg(context.Background(), h, m, wire.Limits{MaxPayload: 1 << 20})
	if err := <-writeErr; err == nil || reply.Header.Get(wire.HeaderError) != string(wire.KindUpstream) {
		t.Fatalf("write error %v, reply %v: want the handler stopped and upstream-unavailable", err, reply.Header)
	}
}
