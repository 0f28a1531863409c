package meshgrpc

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestIsCall: only an HTTP/2 POST with gRPC's Content-Type is a gRPC call;
// gRPC-Web, HTTP/1.1 and other methods go to the HTTP handler.
func TestIsCall(t *testing.T) {
	for _, tt := range []struct {
		name, method, contentType string
		major                     int
		want                      bool
	}{
		{"gRPC", "POST", "application/grpc", 2, true},
		{"gRPC with a codec", "POST", "application/grpc+proto", 2, true},
		{"gRPC with parameters", "POST", "application/grpc; charset=utf-8", 2, true},
		{"gRPC-Web", "POST", "application/grpc-web", 2, false},
		{"over HTTP/1.1", "POST", "application/grpc", 1, false},
		{"GET", "GET", "application/grpc", 2, false},
		{"JSON", "POST", "application/json", 2, false},
		{"no Content-Type", "POST", "", 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/pkg.Svc/Method", nil)
			r.ProtoMajor = tt.major
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			if got := IsCall(r); got != tt.want {
				t.Errorf("IsCall = %v, want %v", got, tt.want)
			}
			served := ""
			Dispatch(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = "grpc" }),
				http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = "http" })).ServeHTTP(httptest.NewRecorder(), r)
			if want := map[bool]string{true: "grpc", false: "http"}[tt.want]; served != want {
				t.Errorf("served by %s, want %s", served, want)
			}
		})
	}
}
