package meshhttp

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/natsmesh/natsmesh/meshhttp/internal/httpstream"
	"github.com/natsmesh/natsmesh/wire"
)

// A protocol upgrade (WebSocket, RFC 6455; any Upgrade but h2c, which
// HTTP/2 ends at the listener) crosses the mesh as one call whose bodies
// are streams both ways, full duplex:
//
//   - the Proxy sends the upgrade request at once, its Upgrade in
//     Mesh-Upgrade (httpwire.HeaderUpgrade), its body an [httpstream.Tunnel]:
//     the bytes the client sends once the service has switched protocols;
//   - the callee's Upstream sends the request to the service, which
//     answers 101 and its connection (net/http gives it as the
//     response's Body, an io.ReadWriteCloser); the Upstream writes the
//     tunnel's bytes to it and answers a streamed 101 whose body is the
//     service's bytes;
//   - the Proxy takes over the client's connection (http.Hijacker),
//     writes the 101 and its headers, and copies both ways until either
//     side ends.
//
// An answer other than 101 is an answer like any other, and the tunnel
// ends empty.

// switchProtocols carries an upgraded call: it takes over the client's
// connection, writes the service's 101 and its headers, starts the
// tunnel (the client's bytes to the service), and copies the service's
// bytes to the client until they end; then it closes the connection,
// which ends the tunnel. Its error is the one that ended the call
// early: a connection that cannot be taken over (HTTP/2; t not started,
// and nothing written), or the mesh error that cut the stream.
func (p *Proxy) switchProtocols(w http.ResponseWriter, resp *http.Response, t *httpstream.Tunnel) error {
	defer resp.Body.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Refuse()
		return wire.Errorf(wire.KindNotImplemented, "protocol upgrade (Upgrade: %.32q) on a connection that cannot be taken over (HTTP/2): use HTTP/1.1", resp.Header.Get("Upgrade"))
	}
	defer conn.Close()
	// The server's deadlines bound a request, not the connection it
	// becomes.
	conn.SetDeadline(time.Time{})
	resp.Header.Del("Content-Length")
	if err := writeSwitch(brw.Writer, resp); err != nil {
		t.Refuse()
		p.log().Debug("meshhttp: writing the 101", "err", err)
		return nil
	}
	t.Start(brw.Reader, conn)
	if _, err := io.Copy(conn, resp.Body); err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return we
		}
		p.log().Debug("meshhttp: writing to an upgraded connection", "err", err)
	}
	return nil
}

// writeSwitch writes the head of a 101 answer to w and flushes it.
func writeSwitch(w *bufio.Writer, resp *http.Response) error {
	w.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(w)
	w.WriteString("\r\n")
	return w.Flush()
}
