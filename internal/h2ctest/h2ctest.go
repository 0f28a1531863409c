// Package h2ctest is a test helper: HTTP/2 clients without TLS (h2c), one
// for each way a client gets there, and curl where it is installed.
//
//   - [Client] is Go's own client with prior knowledge (Protocols
//     UnencryptedHTTP2 alone: no fallback to HTTP/1.1);
//   - [Upgrade] asks to switch with "Upgrade: h2c" over HTTP/1.1, as
//     curl --http2 does, and drives the switched connection frame by frame
//     (Go's client has no such upgrade);
//   - [Curl] runs curl, or skips the test.
//
// Only tests import it (internal/meshtest's TestTestHelpersStayInTests
// checks that).
package h2ctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Client returns a client that speaks HTTP/2 with prior knowledge only,
// to http:// URLs; its idle connections close in t.Cleanup.
func Client(t testing.TB) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Answer is the answer to one request of a [Conn].
type Answer struct {
	Status int
	Header http.Header
	Body   string
	// Reset is the error code of a RST_STREAM that ended the stream.
	Reset http2.ErrCode
}

// Conn is a connection switched to HTTP/2 by Upgrade: h2c. Its methods
// fail the test on any error; each read waits at most 10 s.
type Conn struct {
	t      testing.TB
	c      net.Conn
	fr     *http2.Framer
	host   string
	next   uint32 // the next stream ID of ours
	ended  map[uint32]*Answer
	open   map[uint32]*Answer
	goAway *http2.GoAwayFrame
}

// settings is the HTTP2-Settings header curl sends: a max concurrent
// streams of 100, an initial window of 32 MiB and push off.
const settings = "AAMAAABkAAQCAAAAAAIAAAAA"

// Upgrade connects to addr and sends GET path with Host: host over
// HTTP/1.1, asking to switch to HTTP/2 (Connection: Upgrade,
// HTTP2-Settings; Upgrade: h2c; HTTP2-Settings), with header's "Name:
// value" lines too. Once the server answers 101 it sends the HTTP/2
// preface: the request is stream 1 (see [Conn.Await]). An answer other
// than 101 fails the test. The connection closes in t.Cleanup.
func Upgrade(t testing.TB, addr, host, path string, header ...string) *Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: %s\r\n", path, host, settings)
	for _, h := range header {
		req.WriteString(h + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("h2ctest: answer to the upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "h2c") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("h2ctest: upgrade answered %s %v %q, want 101 Switching Protocols to h2c", resp.Status, resp.Header, body)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &Conn{t: t, c: c, fr: fr, host: host, next: 3,
		ended: map[uint32]*Answer{}, open: map[uint32]*Answer{1: {}}}
}

// Get sends GET path on a new stream and returns the stream's ID.
func (c *Conn) Get(path string) uint32 {
	c.t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", c.host}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := c.next
	c.next += 2
	c.open[id] = &Answer{}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
	return id
}

// Await reads frames until stream id has ended and returns its answer.
func (c *Conn) Await(id uint32) Answer {
	c.t.Helper()
	for c.ended[id] == nil {
		c.read()
	}
	return *c.ended[id]
}

// AwaitGoAway reads frames until the server sends GOAWAY and returns the
// last stream ID it says it processes.
func (c *Conn) AwaitGoAway() uint32 {
	c.t.Helper()
	for c.goAway == nil {
		c.read()
	}
	return c.goAway.LastStreamID
}

// AwaitClose reads frames until the server closes the connection.
func (c *Conn) AwaitClose() {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := c.fr.ReadFrame(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatal("h2ctest: the server did not close the connection")
			}
			return
		}
	}
}

// read reads one frame and notes what it says.
func (c *Conn) read() {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("h2ctest: reading a frame: %v (streams open: %d)", err, len(c.open))
	}
	id := f.Header().StreamID
	a := c.open[id]
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			c.fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			c.fr.WritePing(true, f.Data)
		}
	case *http2.GoAwayFrame:
		c.goAway = f
	case *http2.MetaHeadersFrame:
		if a == nil {
			c.t.Fatalf("h2ctest: headers on stream %d, which is not open", id)
		}
		if a.Header == nil {
			a.Header = http.Header{}
			a.Status, _ = strconv.Atoi(f.PseudoValue("status"))
		}
		for _, h := range f.RegularFields() {
			a.Header.Add(h.Name, h.Value)
		}
		if f.StreamEnded() {
			c.end(id)
		}
	case *http2.DataFrame:
		if a == nil {
			c.t.Fatalf("h2ctest: data on stream %d, which is not open", id)
		}
		a.Body += string(f.Data())
		// Give the window back, so that a long answer keeps coming.
		if n := uint32(len(f.Data())); n > 0 {
			c.fr.WriteWindowUpdate(0, n)
			c.fr.WriteWindowUpdate(id, n)
		}
		if f.StreamEnded() {
			c.end(id)
		}
	case *http2.RSTStreamFrame:
		if a != nil {
			a.Reset = f.ErrCode
			c.end(id)
		}
	}
}

func (c *Conn) end(id uint32) {
	c.ended[id] = c.open[id]
	delete(c.open, id)
}

// Close closes the connection.
func (c *Conn) Close() { c.c.Close() }

// Curl runs curl with args, giving it 10 s, and returns what it wrote to
// stdout; a failure fails the test with what it wrote to stderr. Where
// curl is not installed, or built without HTTP/2, the test is skipped.
func Curl(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	version, err := exec.Command(path, "--version").Output()
	if err != nil || !bytes.Contains(version, []byte("HTTP2")) {
		t.Skip("curl has no HTTP/2")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, append([]string{"--silent", "--show-error", "--max-time", "10"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}
