package agent

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// TestUpstreamForms: Config.Upstream takes http://HOST:PORT with an
// optional base path, or h2c://HOST:PORT, or either over TLS (https://,
// h2://); anything else is refused with the
// accepted forms and without net/url's internal wording (issue 9, item 6).
func TestUpstreamForms(t *testing.T) {
	for _, tc := range []struct {
		upstream string
		want     string // "" for valid; else a substring of the error
		path     string // the base path kept, for valid ones
	}{
		{"http://127.0.0.1:8080", "", ""},
		{"http://127.0.0.1:8080/", "", "/"},
		{"http://127.0.0.1:8080/api", "", "/api"},
		{"http://localhost:8080/api/v1/", "", "/api/v1/"},
		{"h2c://127.0.0.1:9090", "", ""},
		{"https://127.0.0.1:8443/api", "", "/api"},
		{"h2://localhost:9443", "", ""},
		{"h2://127.0.0.1:9443/api", "gRPC has no base path", ""},
		{"127.0.0.1:8080", `upstream "127.0.0.1:8080": no scheme: want http://HOST:PORT`, ""},
		{"localhost:8080", "no scheme: want http://HOST:PORT", ""},
		{"ftp://x:1", "scheme must be http, https, h2c or h2: want http://HOST:PORT", ""},
		{"http://127.0.0.1", "no host:port", ""},
		{"http://", "no host:port", ""},
		{"http://u:p@127.0.0.1:8080", "no user information", ""},
		{"http://127.0.0.1:8080/api?x=1", "no query or fragment", ""},
		{"h2c://127.0.0.1:9090/api", "gRPC has no base path", ""},
		{"http://127.0.0.1:80 80", "want http://HOST:PORT", ""},
	} {
		t.Run(tc.upstream, func(t *testing.T) {
			cfg := Config{Service: "orders", Upstream: tc.upstream}
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				u, _ := parseUpstream(tc.upstream)
				if u.Path != tc.path {
					t.Errorf("base path %q, want %q", u.Path, tc.path)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an ErrConfig containing %q", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "first path segment") || strings.Count(msg, "agent:") != 1 || strings.Count(msg, `"`+tc.upstream+`"`) != 1 {
				t.Errorf("error %q: want one package prefix, the input quoted once, no net/url wording", msg)
			}
		})
	}
}

// TestUpstreamBasePath: issue 9 item 6. An upstream URL with a path
// (http://127.0.0.1:8080/api) puts that path in front of every call's.
func TestUpstreamBasePath(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "one")
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL + "/api/"})
	web := startAgent(t, b, Config{Service: "web"})
	c := &http.Client{Transport: web.Transport()}
	for path, want := range map[string]string{"/v1/items?x=1": "/api/v1/items?x=1", "/": "/api/", "/a%2Fb": "/api/a%2Fb"} {
		resp, err := c.Get("http://orders" + path)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeEcho(t, resp).URI; got != want {
			t.Errorf("%s reached the service as %s, want %s", path, got, want)
		}
	}
}
