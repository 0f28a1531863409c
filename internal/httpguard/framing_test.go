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
	} {
		t.Run(tt.name, func(t *testing.T) {
			whole := &guardConn{}
			whole.observe([]byte(tt.stream))
			bytewise := &guardConn{}
			for i := 0; i < len(tt.stream); i++ {
				bytewise.observe([]byte{tt.stream[i]})
			}
			if whole.ambig.Load() != tt.ambig || bytewise.ambig.Load() != tt.ambig {
				t.Errorf("ambiguous request = %d whole, %d byte by byte; want %d", whole.ambig.Load(), bytewise.ambig.Load(), tt.ambig)
			}
		})
	}
}

// FuzzGuardObserve: any stream, split anywhere, never panics, and the guard
// never keeps more than its bound.
func FuzzGuardObserve(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), uint8(7))
	f.Add([]byte("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		g := &guardConn{}
		step := int(split)%16 + 1
		for i := 0; i < len(stream); i += step {
			g.observe(stream[i:min(i+step, len(stream))])
		}
		if len(g.head) > maxGuardHead+step {
			t.Fatalf("guard holds %d bytes", len(g.head))
		}
	})
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
