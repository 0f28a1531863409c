package meshhttp

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// TestHeadOfAnEmptyResource (review of issue 17): the service answers
// HEAD for an empty resource with Content-Length: 0, carried as
// Mesh-Content-Length: 0; the client gets that 0 (as the agent's proxy
// gave it before meshhttp), not an unknown length.
func TestHeadOfAnEmptyResource(t *testing.T) {
	svc := httptest.NewRecorder()
	svc.Header().Set("Content-Length", "0")
	svc.WriteHeader(200)
	resp := svc.Result()
	resp.Request = httptest.NewRequest(http.MethodHead, "http://orders/empty", nil)
	m, err := httpwire.EncodeResponse(resp, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(wire.HeaderContentLength) != "0" {
		t.Fatalf("the service told no length: %v", m.Header)
	}
	p := &Proxy{Sender: &recording{answer: func(*pipeline.Call) (*pipeline.Reply, error) {
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, m), nil
	}}}
	w, _ := serve(p, httptest.NewRequest(http.MethodHead, "http://orders/empty", nil))
	if got := w.Header().Values("Content-Length"); len(got) != 1 || got[0] != "0" {
		t.Fatalf("HEAD of an empty resource: Content-Length %q, want the service's 0", got)
	}
}
