// Package h2ctest is a test helper: HTTP/2 clients without TLS (h2c), one
// for each way a client gets there, and curl where it is installed.
//
//   - [Client] is Go's own client with prior knowledge (Protocols
//     UnencryptedHTTP2 alone: no fallback to HTTP/1.1);
//   - [Upgrade] asks to switch with "Upgrade: h2c" over HTTP/1.1, as
//     curl --http2 does, and drives the switched connection frame by frame
//     (Go's client has no such upgrade);
//   - [Dial] speaks HTTP/2 with prior knowledge frame by frame, for
//     streams no client would send ([Conn.Send] takes a hand-built HPACK
//     block);
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

	// Settings are the server's first SETTINGS, once read.
	Settings map[http2.SettingID]uint32
	// Closed is set once the server closed the connection (Send, AwaitEnd).
	Closed bool
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
	c := dial(t, addr)
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
	cn := start(t, c, br, host)
	cn.next, cn.open[1] = 3, &Answer{} // the upgraded request is stream 1
	return cn
}

// dial connects to addr, closed in t.Cleanup, with a 10 s deadline.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// start sends the HTTP/2 preface and SETTINGS on c, read through r.
func start(t testing.TB, c net.Conn, r io.Reader, host string) *Conn {
	t.Helper()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, r)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &Conn{t: t, c: c, fr: fr, host: host, next: 1, ended: map[uint32]*Answer{}, open: map[uint32]*Answer{}}
}

// Dial connects to addr and speaks HTTP/2 with prior knowledge (the
// preface, then SETTINGS), as grpc-go does; [Conn.Get] and [Conn.Send]
// open streams on it. The server's first SETTINGS are in
// [Conn.Settings] once a read has seen them ([Conn.AwaitSettings]). The
// connection closes in t.Cleanup.
func Dial(t testing.TB, addr, host string) *Conn {
	t.Helper()
	c := dial(t, addr)
	return start(t, c, c, host)
}

// AwaitSettings reads frames until the server's first SETTINGS and
// returns them.
func (c *Conn) AwaitSettings() map[http2.SettingID]uint32 {
	c.t.Helper()
	for c.Settings == nil {
		c.read()
	}
	return c.Settings
}

// Send opens a stream with the header block block, an HPACK encoding
// built by the caller (a hand-made one, say), in a HEADERS frame and as
// many CONTINUATION frames as its size needs, and returns its ID. With
// end, the stream has no body.
func (c *Conn) Send(block []byte, end bool) uint32 {
	c.t.Helper()
	id := c.next
	c.next += 2
	c.open[id] = &Answer{}
	const frame = 16 << 10 // SETTINGS_MAX_FRAME_SIZE's default
	first := block[:min(len(block), frame)]
	block = block[len(first):]
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) == 0}); err != nil {
		c.t.Fatal(err)
	}
	for len(block) > 0 {
		next := block[:min(len(block), frame)]
		block = block[len(next):]
		if err := c.fr.WriteContinuation(id, len(block) == 0, next); err != nil {
			// The server may close the connection before it has read
			// the whole block: its answer is then the close.
			c.Closed = true
			return id
		}
	}
	return id
}

// AwaitEnd reads frames until stream id has ended or the server closed
// the connection (then Closed is set, and the answer is what came).
func (c *Conn) AwaitEnd(id uint32) Answer {
	c.t.Helper()
	_, a := c.AwaitFirst(id)
	return a
}

// AwaitFirst reads frames until one of the streams ids has ended, or the
// server closed the connection (then Closed is set, and the answer is
// what came on the first of ids), and returns that stream and its answer.
func (c *Conn) AwaitFirst(ids ...uint32) (uint32, Answer) {
	c.t.Helper()
	for !c.Closed {
		for _, id := range ids {
			if a := c.ended[id]; a != nil {
				return id, *a
			}
		}
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		f, err := c.fr.ReadFrame()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("h2ctest: none of streams %v has ended after 10 s", ids)
			}
			c.Closed = true
			break
		}
		c.note(f)
	}
	if a := c.ended[ids[0]]; a != nil {
		return ids[0], *a
	}
	return ids[0], *c.open[ids[0]]
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
	c.note(f)
}

// note takes in what frame f says.
func (c *Conn) note(f http2.Frame) {
	c.t.Helper()
	id := f.Header().StreamID
	a := c.open[id]
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			if c.Settings == nil {
				c.Settings = map[http2.SettingID]uint32{}
				f.ForeachSetting(func(s http2.Setting) error {
					c.Settings[s.ID] = s.Val
					return nil
				})
			}
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

// Bomb is a header block whose decoded size dwarfs its own: the
// request's pseudo-headers and content-type, one literal field name: value
// that enters the decoder's dynamic table (index 62, the newest entry),
// then refs one-byte references to it (an indexed field, 0x80|62), each
// decoding to the whole field again: the HTTP/2 "bomb" (HPACK, RFC 7541
// section 6.1).
func Bomb(authority, path, name string, valueLen, refs int, grpc bool) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	method := "GET"
	if grpc {
		method = "POST"
	}
	fields := [][2]string{{":method", method}, {":scheme", "http"}, {":authority", authority}, {":path", path}}
	if grpc {
		fields = append(fields, [2]string{"content-type", "application/grpc"}, [2]string{"te", "trailers"})
	}
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	// A literal with incremental indexing and a new name (0x40), written
	// by hand so that it is indexed whatever the encoder would choose.
	b.WriteByte(0x40)
	b.Write(hpackString(name))
	b.Write(hpackString(strings.Repeat("a", valueLen)))
	b.Write(bytes.Repeat([]byte{0x80 | 62}, refs))
	return b.Bytes()
}

// hpackString is s as an HPACK string literal, without Huffman coding.
func hpackString(s string) []byte {
	var b []byte
	n := len(s)
	if n < 127 {
		return append([]byte{byte(n)}, s...)
	}
	b = append(b, 127)
	n -= 127
	for n >= 128 {
		b = append(b, byte(n%128+128))
		n /= 128
	}
	return append(append(b, byte(n)), s...)
}
