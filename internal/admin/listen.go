package admin

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// Off reports whether addr turns a listener off: "" or "off".
func Off(addr string) bool { return addr == "" || addr == "off" }

// Listen opens a listener on addr for an admin endpoint, or returns nil and
// no error when addr is off ([Off]). Components listen before they connect
// anywhere, so a port in use is reported at once.
func Listen(addr string) (net.Listener, error) {
	if Off(addr) {
		return nil, nil
	}
	return net.Listen("tcp", addr)
}

// Serve serves h on l in a goroutine of its own and returns the server, for
// the caller to Close once it is done: components close it last, so that
// /readyz answers "not ready" while they drain. A failure of the server
// other than its Close goes to fail.
func Serve(l net.Listener, h http.Handler, fail func(error)) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail(err)
		}
	}()
	return srv
}
