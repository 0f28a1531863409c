package admin

import (
	"io"
	"net/http"
	"testing"
)

func TestListenServe(t *testing.T) {
	for _, addr := range []string{"", "off"} {
		if l, err := Listen(addr); l != nil || err != nil {
			t.Fatalf("Listen(%q) = %v, %v; want no listener", addr, l, err)
		}
	}
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	srv := Serve(l, Handler(Config{}), func(err error) { failed <- err })
	resp, err := http.Get("http://" + l.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, body)
	}
	srv.Close()
	if _, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil {
		t.Fatal("served after Close")
	}
	select {
	case err := <-failed:
		t.Fatalf("Close reported as a failure: %v", err)
	default:
	}
}
