package httpwire

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
)

// Tests that kill the mutants of this package no other test noticed
// (docs/testing.md): the edges of what the codec reads and writes.

// leastLimit is the least limit n (from 1) for which ok holds.
func leastLimit(t *testing.T, ok func(n int) bool) int {
	t.Helper()
	for n := 1; n < 1<<20; n++ {
		if ok(n) {
			return n
		}
	}
	t.Fatal("no limit fits")
	return 0
}

// TestReplyStatusRange: a reply whose Mesh-Status is a three-digit
// status, 100 to 999 included, is the service's answer with that status;
// anything else there is no mesh reply, but a NATS-native answer (200,
// its payload the body).
func TestReplyStatusRange(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   int
	}{{"100", 100}, {"999", 999}, {"99", 200}, {"1000", 200}} {
		resp, err := DecodeResponse(&nats.Msg{Header: nats.Header{wire.HeaderStatus: {tc.status}}, Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("Mesh-Status %s: status %d, want %d", tc.status, resp.StatusCode, tc.want)
		}
	}
}

// TestDecodedRequestDeadline: a request message without Mesh-Timeout
// decodes into a request whose context has no deadline and is live
// until cancel; with one, that deadline.
func TestDecodedRequestDeadline(t *testing.T) {
	m := &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}
	r, cancel, err := DecodeRequest(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Context().Deadline(); ok || r.Context().Err() != nil {
		t.Errorf("no Mesh-Timeout: the request's context has a deadline or has ended (%v)", r.Context().Err())
	}
	cancel()
	if r.Context().Err() == nil {
		t.Error("cancel did not end the request's context")
	}
	m.Header.Set(wire.HeaderTimeout, "5s")
	r, cancel, err = DecodeRequest(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if d, ok := r.Context().Deadline(); !ok || time.Until(d) > 5*time.Second || time.Until(d) < 2*time.Second {
		t.Errorf("Mesh-Timeout 5s: deadline %v (%v)", d, ok)
	}
}

// TestProxyHeadersAreHopByHop: a header named Proxy- and anything after
// it is hop-by-hop and does not cross; a short header starting with P
// does.
func TestProxyHeadersAreHopByHop(t *testing.T) {
	r, err := http.NewRequest("GET", "http://orders/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Proxy-", "x")
	r.Header.Set("Proxy-Authorization", "secret")
	r.Header.Set("P", "1")
	r.Header.Set("Pq", "2")
	m, err := EncodeRequest(r, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCall(context.Background(), m.Header, m.Data, "GET")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Proxy-": "", "Proxy-Authorization": "", "P": "1", "Pq": "2"} {
		if v := got.Header.Get(name); v != want {
			t.Errorf("header %s crossed as %q, want %q", name, v, want)
		}
	}
}

// TestContentLengthOnlyForABody: a request with a body says its length;
// one without says none (a GET gets no Content-Length: 0 it did not
// send).
func TestContentLengthOnlyForABody(t *testing.T) {
	for _, tc := range []struct {
		method, body, want string
	}{{"GET", "", ""}, {"POST", "hello", "5"}} {
		r, err := http.NewRequest(tc.method, "http://orders/", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.body == "" {
			r.Body, r.ContentLength = nil, 0
		}
		m, err := EncodeRequest(r, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("Content-Length"); got != tc.want {
			t.Errorf("%s with a body of %d bytes: Content-Length %q, want %q", tc.method, len(tc.body), got, tc.want)
		}
	}
}

// TestNoEmptyRetryAfter: a mesh error without a Retry-After answers
// without the header at all, not with an empty one.
func TestNoEmptyRetryAfter(t *testing.T) {
	resp := ErrorResponse(&wire.Error{Kind: wire.KindUpstream, Message: "down"})
	if v, ok := resp.Header[wire.HeaderRetryAfter]; ok {
		t.Errorf("an error without Retry-After answered with %s %q", wire.HeaderRetryAfter, v)
	}
}

// TestChunkedRequestSaysItsLength: a request body of unknown length
// (chunked) crosses as a sized one: its message says the length.
func TestChunkedRequestSaysItsLength(t *testing.T) {
	r, err := http.NewRequest("POST", "http://orders/", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	r.ContentLength = -1
	m, err := EncodeRequest(r, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Content-Length"); got != "5" || string(m.Data) != "hello" {
		t.Errorf("chunked request of 5 bytes: Content-Length %q, body %q", got, m.Data)
	}
}

// TestRequestTrailerCounted: a request's trailer counts against the
// header limits as one value of its bytes ("name: value\r\n").
func TestRequestTrailerCounted(t *testing.T) {
	request := func(trailer bool) *http.Request {
		r, err := http.NewRequest("POST", "http://orders/", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-A", "1")
		if trailer {
			r.Trailer = http.Header{"X-T": {"vv"}}
		}
		return r
	}
	// The least limits the request without its trailer fits.
	least := func(ok func(n int) bool) int { return leastLimit(t, ok) }
	n0 := least(func(n int) bool {
		_, err := EncodeRequest(request(false), wire.Limits{MaxHeaders: n})
		return err == nil
	})
	s0 := least(func(n int) bool {
		_, err := EncodeRequest(request(false), wire.Limits{MaxHeaderBytes: n})
		return err == nil
	})
	s1 := s0 + len("X-T") + len("vv") + 4
	for _, tc := range []struct {
		lim wire.Limits
		ok  bool
	}{
		{wire.Limits{MaxHeaders: n0 + 1, MaxHeaderBytes: s1}, true},
		{wire.Limits{MaxHeaders: n0, MaxHeaderBytes: s1}, false},
		{wire.Limits{MaxHeaders: n0 + 1, MaxHeaderBytes: s1 - 1}, false},
	} {
		if _, err := EncodeRequest(request(true), tc.lim); (err == nil) != tc.ok {
			t.Errorf("with a trailer, limits %d values and %d bytes (without it %d and %d): %v, want ok %v",
				tc.lim.MaxHeaders, tc.lim.MaxHeaderBytes, n0, s0, err, tc.ok)
		}
	}
}

// TestCheckHeaderLimitsExact: a gateway's check of a client's headers
// counts each end-to-end value and its bytes ("name: value\r\n") to the
// limit, leaving hop-by-hop headers and Content-Length out.
func TestCheckHeaderLimitsExact(t *testing.T) {
	h := http.Header{"X-A": {"1", "22"}, "Connection": {"close"}, "Content-Length": {"5"}}
	size := len("X-A") + 1 + 4 + len("X-A") + 2 + 4
	for _, tc := range []struct {
		lim wire.Limits
		ok  bool
	}{
		{wire.Limits{MaxHeaders: 2, MaxHeaderBytes: size}, true},
		{wire.Limits{MaxHeaders: 1, MaxHeaderBytes: size}, false},
		{wire.Limits{MaxHeaders: 2, MaxHeaderBytes: size - 1}, false},
	} {
		if err := CheckHeaderLimits(h, tc.lim); (err == nil) != tc.ok {
			t.Errorf("limits %d values and %d bytes: %v, want ok %v", tc.lim.MaxHeaders, tc.lim.MaxHeaderBytes, err, tc.ok)
		}
	}
}

// TestCheckTrailerExact: a streamed request's header and trailer
// together are held to the mesh's bounds, to the value and the byte.
func TestCheckTrailerExact(t *testing.T) {
	values := func(n int) http.Header {
		h := http.Header{}
		for i := range n {
			h.Set("X-H"+strings.Repeat("h", i), "v")
		}
		return h
	}
	half := wire.DefaultMaxHeaders / 2
	if err := CheckTrailer(values(half), values(wire.DefaultMaxHeaders-half)); err != nil {
		t.Errorf("%d values: %v", wire.DefaultMaxHeaders, err)
	}
	if err := CheckTrailer(values(half), values(wire.DefaultMaxHeaders-half+1)); err == nil {
		t.Errorf("%d values: no error", wire.DefaultMaxHeaders+1)
	}
	big := func(n int) http.Header { return http.Header{"X-Big": {strings.Repeat("b", n-len("X-Big")-4)}} }
	trailer := http.Header{"X-T": {"1"}}
	rest := wire.DefaultMaxHeaderBytes - (len("X-T") + 1 + 4)
	if err := CheckTrailer(big(rest), trailer); err != nil {
		t.Errorf("%d bytes: %v", wire.DefaultMaxHeaderBytes, err)
	}
	if err := CheckTrailer(big(rest+1), trailer); err == nil {
		t.Errorf("%d bytes: no error", wire.DefaultMaxHeaderBytes+1)
	}
}

// TestResponseHeadEdges: a streamed answer's head says a known length
// of 0 (a sized, empty body, not a chunked one); a 101 without an Upgrade
// header carries no empty Mesh-Upgrade; its declared trailers count
// against the header limits as one value each.
func TestResponseHeadEdges(t *testing.T) {
	m, err := ResponseHead(200, http.Header{}, 0, nil, wire.Limits{})
	if err != nil || m.Header.Get("Content-Length") != "0" {
		t.Errorf("a head of length 0: %v %v, want Content-Length: 0", m, err)
	}
	m, err = ResponseHead(http.StatusSwitchingProtocols, http.Header{}, -1, nil, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Header[HeaderUpgrade]; ok {
		t.Errorf("a 101 without Upgrade: %s %q", HeaderUpgrade, v)
	}
	h := http.Header{"X-A": {"1"}}
	trailer := http.Header{"X-T": nil}
	least := func(ok func(n int) bool) int { return leastLimit(t, ok) }
	n0 := least(func(n int) bool {
		_, err := ResponseHead(200, h, -1, nil, wire.Limits{MaxHeaders: n})
		return err == nil
	})
	s0 := least(func(n int) bool {
		_, err := ResponseHead(200, h, -1, nil, wire.Limits{MaxHeaderBytes: n})
		return err == nil
	})
	n1 := least(func(n int) bool {
		_, err := ResponseHead(200, h, -1, trailer, wire.Limits{MaxHeaders: n})
		return err == nil
	})
	s1 := least(func(n int) bool {
		_, err := ResponseHead(200, h, -1, trailer, wire.Limits{MaxHeaderBytes: n})
		return err == nil
	})
	if n1 != n0+1 || s1 <= s0 {
		t.Errorf("a declared trailer: limits %d values and %d bytes, without it %d and %d; want one value and its bytes more", n1, s1, n0, s0)
	}
}

// TestClientMeshTimeoutNotCopied: a client's Mesh-Timeout request header
// is the call's deadline (the entry point reads it), not a header of the
// request: the message carries no copy of it.
func TestClientMeshTimeoutNotCopied(t *testing.T) {
	encode := func(timeout bool) nats.Header {
		r, err := http.NewRequest("GET", "http://orders/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-A", "1")
		if timeout {
			r.Header.Set(wire.HeaderTimeout, "5s")
		}
		m, err := EncodeRequest(r, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return m.Header
	}
	without, with := encode(false), encode(true)
	if len(with) != len(without) {
		t.Errorf("with the client's Mesh-Timeout the message has headers %v, without it %v", with, without)
	}
}

// TestIPv6HostEdges: an IPv6 literal's hex digits, each range's ends
// included, may be upper case, and it may end in an IPv4 address; the
// bytes just outside each range are no host.
func TestIPv6HostEdges(t *testing.T) {
	for host, want := range map[string]bool{
		"[::A]:80":            true,
		"[::F]":               true,
		"[::0]":               true,
		"[::9]":               true,
		"[::a]":               true,
		"[::f]":               true,
		"[::ffff:1.2.3.4]:80": true,
		"[::g]":               false,
		"[::G]":               false,
		"[::@]":               false,
		"[::/]":               false,
		"[::`]":               false,
	} {
		if got := validHost(host); got != want {
			t.Errorf("validHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestStreamHeadLengthZero: a streamed answer's head that says
// Content-Length: 0 is a sized empty body, not one of unknown length.
func TestStreamHeadLengthZero(t *testing.T) {
	resp, err := DecodeResponseHead(nats.Header{wire.HeaderStatus: {"200"}, "Content-Length": {"0"}})
	if err != nil || resp.ContentLength != 0 {
		t.Errorf("a head with Content-Length 0: %v, %v; want length 0", resp, err)
	}
}

// TestRequestHeadTrailersCounted: a streamed request's declared trailers
// count against the header limits, one value each, with their bytes.
func TestRequestHeadTrailersCounted(t *testing.T) {
	request := func(trailer bool) *http.Request {
		r, err := http.NewRequest("POST", "http://orders/", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-A", "1")
		if trailer {
			r.Trailer = http.Header{"X-Digest": nil}
		}
		return r
	}
	least := func(ok func(n int) bool) int { return leastLimit(t, ok) }
	for _, tc := range []struct {
		name string
		lim  func(n int) wire.Limits
		more int
	}{
		{"values", func(n int) wire.Limits { return wire.Limits{MaxHeaders: n} }, 1},
		{"bytes", func(n int) wire.Limits { return wire.Limits{MaxHeaderBytes: n} }, len("X-Digest") + 4},
	} {
		without := least(func(n int) bool { _, err := EncodeRequestHead(request(false), tc.lim(n)); return err == nil })
		with := least(func(n int) bool { _, err := EncodeRequestHead(request(true), tc.lim(n)); return err == nil })
		if with != without+tc.more {
			t.Errorf("%s: %d with a declared trailer, %d without; want %d more", tc.name, with, without, tc.more)
		}
	}
}

// TestHostNameEdges: a host name's labels take [A-Za-z0-9_-], each
// range's ends included; the bytes just outside them are no name.
func TestHostNameEdges(t *testing.T) {
	for host, want := range map[string]bool{
		"a": true, "z": true, "A": true, "Z": true, "0": true, "9": true, "a-b_c": true,
		"a`": false, "a{": false, "a@": false, "a[": false, "a/": false, "a;": false,
	} {
		if got := validHost(host); got != want {
			t.Errorf("validHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestDecodedMethodEdges: a raw client's Mesh-Method is an HTTP token of
// at most 32 bytes: 32 is accepted, 33 not, nor a space, DEL, or a
// delimiter (the first of them, '"', too).
func TestDecodedMethodEdges(t *testing.T) {
	for method, want := range map[string]bool{
		strings.Repeat("M", 32): true,
		strings.Repeat("M", 33): false,
		"GET":                   true,
		"G~T!":                  true,
		"GE T":                  false,
		"GET\x7f":               false,
		"GET\"":                 false,
		"GET}":                  false,
	} {
		_, err := DecodeCall(context.Background(), nats.Header{wire.HeaderMethod: {method}, wire.HeaderPath: {"/"}}, nil, "")
		if (err == nil) != want {
			t.Errorf("Mesh-Method %q: %v, want ok %v", method, err, want)
		}
	}
}

// TestContentLengthHeaderNotCounted: a request's own Content-Length
// header is the encoder's to write, and does not count against the
// header limits.
func TestContentLengthHeaderNotCounted(t *testing.T) {
	r, err := http.NewRequest("POST", "http://orders/", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Length", "5")
	r.Header.Set("X-A", "1")
	if _, err := EncodeRequest(r, wire.Limits{MaxHeaders: 1, MaxHeaderBytes: len("X-A") + 1 + 4}); err != nil {
		t.Errorf("one header and Content-Length at a limit of one: %v", err)
	}
}

// TestHostEdges: a port from 0 to 65535 and a label of up to 63 bytes
// are a host's.
func TestHostEdges(t *testing.T) {
	for host, want := range map[string]bool{
		"orders:0":              true,
		strings.Repeat("a", 63): true,
	} {
		if got := validHost(host); got != want {
			t.Errorf("validHost(%.20q) = %v, want %v", host, got, want)
		}
	}
}

// TestHeadAnswerLengthZero: the answer to HEAD of a resource of length 0
// says so (Mesh-Content-Length: 0), as one of any other length does.
func TestHeadAnswerLengthZero(t *testing.T) {
	req, err := http.NewRequest(http.MethodHead, "http://orders/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, ContentLength: 0, Request: req}
	m, err := EncodeResponse(resp, wire.Limits{})
	if err != nil || m.Header.Get(wire.HeaderContentLength) != "0" {
		t.Errorf("HEAD of a resource of length 0: %v, %v; want %s: 0", m, err, wire.HeaderContentLength)
	}
}

// TestResponseTrailerCounted: an answer's trailer counts against the
// header limits as one value of its bytes.
func TestResponseTrailerCounted(t *testing.T) {
	h := http.Header{"X-A": {"1"}}
	for _, tc := range []struct {
		name string
		lim  func(n int) wire.Limits
		more int
	}{
		{"values", func(n int) wire.Limits { return wire.Limits{MaxHeaders: n} }, 1},
		{"bytes", func(n int) wire.Limits { return wire.Limits{MaxHeaderBytes: n} }, len("X-T") + len("vv") + 4},
	} {
		without := leastLimit(t, func(n int) bool { _, err := ResponseMsg(200, h, nil, nil, tc.lim(n)); return err == nil })
		with := leastLimit(t, func(n int) bool {
			_, err := ResponseMsg(200, h, nil, http.Header{"X-T": {"vv"}}, tc.lim(n))
			return err == nil
		})
		if with != without+tc.more {
			t.Errorf("%s: %d with a trailer, %d without; want %d more", tc.name, with, without, tc.more)
		}
	}
}

// TestEncodeResponseBody: a service's answer crosses with its body; a
// body that breaks while it is read is the service's failure
// (upstream-unavailable), one over max_payload too-large.
func TestEncodeResponseBody(t *testing.T) {
	resp := &http.Response{StatusCode: 201, Header: http.Header{"X-A": {"1"}}, ContentLength: 5, Body: io.NopCloser(strings.NewReader("hello"))}
	m, err := EncodeResponse(resp, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(m)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(got.Body); got.StatusCode != 201 || string(body) != "hello" {
		t.Errorf("answer %d %q, want 201 hello", got.StatusCode, body)
	}
	broken := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1,
		Body: io.NopCloser(io.MultiReader(strings.NewReader("he"), iotest.ErrReader(errors.New("connection reset"))))}
	_, err = EncodeResponse(broken, wire.Limits{})
	if e := wire.FromError(err); err == nil || e.Kind != wire.KindUpstream {
		t.Errorf("a broken answer body: %v, want upstream-unavailable", err)
	}
	big := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 2000, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 2000)))}
	_, err = EncodeResponse(big, wire.Limits{MaxPayload: 1000})
	if e := wire.FromError(err); err == nil || e.Kind != wire.KindTooLarge {
		t.Errorf("an answer body over max_payload: %v, want too-large", err)
	}
}

// TestWriteResponseKeepsLength: an answer without trailers is written
// with its Content-Length (sized), one with trailers without it (chunked,
// so the trailers are sent).
func TestWriteResponseKeepsLength(t *testing.T) {
	for _, tc := range []struct {
		trailer http.Header
		want    string
	}{{nil, "5"}, {http.Header{"X-T": {"1"}}, ""}} {
		w := httptest.NewRecorder()
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Length": {"5"}}, Trailer: tc.trailer, Body: io.NopCloser(strings.NewReader("hello"))}
		if err := WriteResponse(w, resp); err != nil {
			t.Fatal(err)
		}
		if got := w.Header().Get("Content-Length"); got != tc.want {
			t.Errorf("trailers %v: Content-Length %q, want %q", tc.trailer, got, tc.want)
		}
	}
}

// TestPathEscapeAtTheEnd: an escape that ends the path is read: a dot
// segment spelled with an escaped slash at the end is ambiguous, and a
// cut escape at the end is no escape.
func TestPathEscapeAtTheEnd(t *testing.T) {
	for p, want := range map[string]bool{
		`/..%2f`:      true,
		`/a%2F..%2`:   false,
		`/a%2F..%2F%`: true,
	} {
		if got := AmbiguousPath(p); got != want {
			t.Errorf("AmbiguousPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestRequestLineEdges: a Host of the longest length accepted (a 253-byte
// name and a port) is one; a query that begins with a fragment is
// refused.
func TestRequestLineEdges(t *testing.T) {
	label := strings.Repeat("a", 63)
	name := label + "." + label + "." + label + "." + strings.Repeat("a", 61)
	if host := name + ":65535"; len(host) != maxHostLen || !validHost(host) {
		t.Errorf("a host of %d bytes (the most): refused", len(host))
	}
	h := nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}, wire.HeaderQuery: {"#frag"}}
	if _, err := DecodeCall(context.Background(), h, nil, ""); err == nil {
		t.Error("a query that is a fragment: accepted")
	}
}
