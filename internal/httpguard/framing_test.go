package httpguard

import (
	"strings"
	"testing"
)

// TestGuardObserve feeds request streams to the guard whole and one byte at
// a time (heads split across reads), and checks what it concludes.
func TestGuardObserve(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stream string
		ambig  int64 // ordinal of the ambiguous request, 0 for none
	}{
		{"plain GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0},
		{"both fields", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1},
		{"both fields, bare LF", "POST / HTTP/1.1\nContent-Length: 3\nTransfer-Encoding: chunked\n\n", 1},
		{"both fields, odd case and spaces", "POST / HTTP/1.1\r\ncOnTeNt-LeNgTh: 3\r\ntransfer-encoding:  chunked\r\n\r\n", 1},
		{"second request of a keep-alive", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2},
		{"fields only in the body", "POST / HTTP/1.1\r\nContent-Length: 43\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n", 0},
		{"chunked alone, then anything", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
		{"empty lines between requests", "GET / HTTP/1.1\r\n\r\n\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2},
		{"HTTP/1.0 with Transfer-Encoding alone", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 1},
		{"HTTP/1.0 keep-alive, then an ambiguous one", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2},
		{"folded line is refused", "POST / HTTP/1.1\r\nX-A: b\r\n Content-Length: 5\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 1},
		{"folded Transfer-Encoding", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 1},
		{"folded line in a second request", "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX-A: b\r\n\tc\r\n\r\n", 2},
		{"bare-LF head ends at its first empty line", "GET / HTTP/1.1\nTransfer-Encoding: chunked\n\n14\r\nContent-Length: 1\r\n\r\n0\r\n\r\n", 0},
		{"LF CRLF ends a head", "GET / HTTP/1.1\nContent-Length: 3\n\r\nabcPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2},
		// HTTP/2 frames are no heads: after the preface, which opens a
		// connection with prior knowledge or follows the switch of
		// Upgrade: h2c, nothing is read as one (a frame's bytes can look
		// like a folded line).
		{"HTTP/2 preface stops the guard", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\n\tx\r\n\r\n" + ambiguousHead, 0},
		{"HTTP/2 preface after an upgrade", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + ambiguousHead, 0},
		{"PRI with a header is no preface", "PRI * HTTP/2.0\r\nX: y\r\n\r\n" + ambiguousHead, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			whole, bytewise := observeWholeAndBytewise(tt.stream)
			if whole.ambig.Load() != tt.ambig || bytewise.ambig.Load() != tt.ambig {
				t.Errorf("ambiguous request = %d whole, %d byte by byte; want %d", whole.ambig.Load(), bytewise.ambig.Load(), tt.ambig)
			}
		})
	}
}

// ambiguousHead is a head with both Content-Length and Transfer-Encoding.
const ambiguousHead = "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"

// observeWholeAndBytewise feeds stream to one guard in a single read and
// to another one byte at a time.
func observeWholeAndBytewise(stream string) (whole, bytewise *guardConn) {
	whole, bytewise = &guardConn{}, &guardConn{}
	whole.observe([]byte(stream))
	for i := 0; i < len(stream); i++ {
		bytewise.observe([]byte{stream[i]})
	}
	return whole, bytewise
}

// FuzzGuardObserve: any stream, split anywhere, never panics, the guard
// never keeps more than its bound, and (for streams whose heads fit in
// that bound) it concludes the same as from the stream read whole.
func FuzzGuardObserve(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), uint8(7))
	f.Add([]byte("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"), uint8(1))
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET / HTTP/1.1\r\n\r\n"), uint8(5))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x01\x00\x00\x00\x00"), uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		g := &guardConn{}
		step := int(split)%16 + 1
		for i := 0; i < len(stream); i += step {
			g.observe(stream[i:min(i+step, len(stream))])
		}
		if len(g.head) > maxGuardHead+step {
			t.Fatalf("guard holds %d bytes", len(g.head))
		}
		if len(stream) >= maxGuardHead {
			return
		}
		whole := &guardConn{}
		whole.observe(stream)
		if g.heads != whole.heads || g.ambig.Load() != whole.ambig.Load() || g.received.Load() != whole.received.Load() ||
			g.bodyLeft != whole.bodyLeft || g.stopped != whole.stopped {
			t.Errorf("read in steps of %d: heads %d, ambiguous %d, received %d, body left %d, stopped %v; read whole: %d, %d, %d, %d, %v",
				step, g.heads, g.ambig.Load(), g.received.Load(), g.bodyLeft, g.stopped,
				whole.heads, whole.ambig.Load(), whole.received.Load(), whole.bodyLeft, whole.stopped)
		}
	})
}

// TestGuardReceived: the guard knows when a request's body has been read
// from the connection in full (then no deadline is needed for it), by its
// Content-Length, whole or byte by byte; never for a chunked body.
func TestGuardReceived(t *testing.T) {
	for _, tt := range []struct {
		name     string
		stream   string
		received int64
	}{
		{"body whole", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", 1},
		{"body short of one byte", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbod", 0},
		{"no body", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1},
		{"Content-Length 0", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 1},
		{"second body still coming", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", 1},
		{"second body in", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 2},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0},
		{"plus sign", "POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\nab", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			whole, bytewise := observeWholeAndBytewise(tt.stream)
			if whole.received.Load() != tt.received || bytewise.received.Load() != tt.received {
				t.Errorf("received = %d whole, %d byte by byte; want %d", whole.received.Load(), bytewise.received.Load(), tt.received)
			}
		})
	}
}

// BenchmarkGuardObserve: following a request head and its 1 KiB body, as
// they arrive in one read, costs no allocation.
func BenchmarkGuardObserve(b *testing.B) {
	req := []byte("POST http://echo/echo HTTP/1.1\r\nHost: echo\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 1024\r\n" +
		"Content-Type: application/octet-stream\r\nAccept-Encoding: gzip\r\n\r\n" + strings.Repeat("x", 1024))
	g := &guardConn{}
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		g.observe(req)
	}
	if g.stopped || g.ambig.Load() != 0 || g.received.Load() != g.heads {
		b.Fatalf("stopped %v, ambiguous %d, received %d of %d", g.stopped, g.ambig.Load(), g.received.Load(), g.heads)
	}
}

// TestMeshRefusal: Go's own refusals, in the exact shapes its server writes
// them, get the mesh's form; anything else passes unchanged.
func TestMeshRefusal(t *testing.T) {
	const eh = goErrorHeaders
	for _, tt := range []struct {
		in, kind string
	}{
		{"HTTP/1.1 431 Request Header Fields Too Large" + eh + "431 Request Header Fields Too Large", "headers-too-large"},
		{"HTTP/1.1 400 Bad Request" + eh + "400 Bad Request", "bad-request"},
		{"HTTP/1.1 400 Bad Request: missing required Host header" + eh + "400 Bad Request: missing required Host header", "bad-request"},
		{"HTTP/1.1 501 Not Implemented" + eh + "Unsupported transfer encoding", "not-implemented"},
		{"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + eh + "505 HTTP Version Not Supported: unsupported protocol version", ""},
		{"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 2\r\n\r\nok", ""},
		{"HTTP/1.1 431 Request Header Fields Too Large" + eh + "431 Request Header Fields Too Large and more", ""},
	} {
		out, ok := meshRefusal([]byte(tt.in))
		if ok != (tt.kind != "") {
			t.Errorf("%.40q: rewritten %v", tt.in, ok)
			continue
		}
		if ok && !strings.Contains(string(out), "\r\nMesh-Error: "+tt.kind+"\r\n") {
			t.Errorf("%.40q: rewritten to %q, want Mesh-Error %s", tt.in, out, tt.kind)
		}
	}
}
