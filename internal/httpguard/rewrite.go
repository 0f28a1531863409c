package httpguard

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/natsmesh/natsmesh/wire"
)

// goErrorHeaders is what Go's server puts between the status line and the
// body of the answers it writes itself, when it cannot read a request
// (net/http server.go, conn.serve: "errorHeaders"). Each such answer is one
// Write of the whole message straight to the connection, before any handler
// runs, followed by closing it.
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// Write sends p, except that one of Go's own refusals is replaced by the
// same refusal in the mesh's form (see [meshRefusal]). On a connection that
// speaks HTTP/2 nothing matches: a frame's fourth byte is its type (0 to
// 9), never the 'P' of "HTTP/1.1".
func (c *guardConn) Write(p []byte) (int, error) {
	if alt, ok := meshRefusal(p); ok {
		if _, err := c.Conn.Write(alt); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// meshRefusal recognizes a whole answer that Go's server wrote on its own
// and returns the mesh's answer for it: the same status, with a Mesh-Error
// header, a Content-Length and a one-line body. So headers over
// MaxHeaderBytes get "431, Mesh-Error: headers-too-large" exactly like the
// mesh's own header limit (issue 9: two answers for one limit), and a
// malformed request "400, Mesh-Error: bad-request".
//
// Only the exact shapes Go writes match: "HTTP/1.1 <status line>", the fixed
// error headers, and a body that repeats the status line (or, for 501, says
// "Unsupported transfer encoding"). A handler's response always carries a
// Date header, so it cannot look like this; only a body written on its own
// that is exactly such a message could, and then only its own answer
// changes.
func meshRefusal(p []byte) ([]byte, bool) {
	// Every answer passes here: the status line's code (a 4xx or 5xx)
	// rules out the rest, a handler's 200 among them, without a search.
	if len(p) < len("HTTP/1.1 400") || !bytes.HasPrefix(p, []byte("HTTP/1.1 ")) || (p[9] != '4' && p[9] != '5') {
		return nil, false
	}
	line, body, ok := bytes.Cut(p, []byte(goErrorHeaders))
	if !ok || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || bytes.ContainsAny(line, "\r\n") {
		return nil, false
	}
	line = line[len("HTTP/1.1 "):]
	if len(line) < 4 || line[3] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(string(line[:3]))
	if err != nil {
		return nil, false
	}
	var e *wire.Error
	switch {
	case code == http.StatusRequestHeaderFieldsTooLarge && bytes.Equal(body, line):
		e = wire.Errorf(wire.KindHeadersTooLarge, "request headers exceed the listener's limit")
	case code == http.StatusBadRequest && bytes.Equal(body, line):
		msg := "malformed request"
		if _, detail, found := bytes.Cut(line, []byte(": ")); found {
			msg = string(detail)
		}
		e = wire.Errorf(wire.KindBadRequest, "%s", msg)
	case code == http.StatusNotImplemented && string(body) == "Unsupported transfer encoding":
		e = wire.Errorf(wire.KindNotImplemented, "unsupported transfer encoding")
	default:
		return nil, false
	}
	if e.HTTPStatus() != code {
		return nil, false
	}
	msg := e.Error() + "\n"
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n%s: %s\r\n", wire.HeaderError, e.Kind)
	fmt.Fprintf(&b, "Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	return b.Bytes(), true
}
