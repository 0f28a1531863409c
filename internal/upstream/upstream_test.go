package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGetNamesUpstream: a path health check that cannot reach the
// service (here a TLS certificate the transport does not trust) says
// which upstream, as Connect does, so /readyz names it with --health PATH
// too.
func TestGetNamesUpstream(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	err = Get(context.Background(), tr, u, "/")
	if err == nil || !strings.Contains(err.Error(), "upstream "+srv.URL) {
		t.Fatalf("Get = %v, want an error naming upstream %s", err, srv.URL)
	}
}
