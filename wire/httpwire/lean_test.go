package httpwire

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/natsmesh/natsmesh/wire"
)

// TestReadLimited: a body read by its told length is the body that came,
// whatever the length said; one past max is too-large; a body that broke
// (net/http's io.ErrUnexpectedEOF for a connection closed short of its
// Content-Length) is an error, never a shorter body.
func TestReadLimited(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      io.Reader
		hint, max int64
		want      string
		kind      wire.Kind
	}{
		{name: "exact", body: strings.NewReader("hello"), hint: 5, max: 10, want: "hello"},
		{name: "exact one byte a read", body: iotest.OneByteReader(strings.NewReader("hello")), hint: 5, max: 10, want: "hello"},
		{name: "data and EOF together", body: iotest.DataErrReader(strings.NewReader("hello")), hint: 5, max: 10, want: "hello"},
		{name: "shorter than told", body: strings.NewReader("hel"), hint: 5, max: 10, want: "hel"},
		{name: "longer than told", body: strings.NewReader("hello world"), hint: 5, max: 20, want: "hello world"},
		{name: "longer than max", body: strings.NewReader("hello world"), hint: 5, max: 8, kind: wire.KindTooLarge},
		{name: "told max, one more", body: strings.NewReader("hello!"), hint: 5, max: 5, kind: wire.KindTooLarge},
		{name: "unknown length", body: strings.NewReader("hello"), hint: -1, max: 10, want: "hello"},
		{name: "unknown length over max", body: strings.NewReader("hello"), hint: -1, max: 4, kind: wire.KindTooLarge},
		{name: "broken short", body: io.MultiReader(strings.NewReader("hel"), iotest.ErrReader(io.ErrUnexpectedEOF)), hint: 5, max: 10, kind: wire.KindBadRequest},
		{name: "broken after", body: io.MultiReader(strings.NewReader("hello"), iotest.ErrReader(errors.New("reset"))), hint: 5, max: 10, kind: wire.KindBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readLimited(tc.body, tc.hint, tc.max)
			if tc.kind != "" {
				if e := wire.FromError(err); err == nil || e.Kind != tc.kind {
					t.Fatalf("err %v, want kind %s", err, tc.kind)
				}
				return
			}
			if err != nil || !bytes.Equal(got, []byte(tc.want)) {
				t.Fatalf("%q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestReadLimitedAllocs: a body of known length costs its buffer only.
func TestReadLimitedAllocs(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1024)
	r := bytes.NewReader(body)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(body)
		if b, err := readLimited(r, int64(len(body)), 1<<20); err != nil || len(b) != len(body) {
			t.Fatal(len(b), err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%v allocations a read, want 1", allocs)
	}
}

// TestDecodeResponseBodyAllocs: the status line and the body in memory of
// a decoded answer cost no allocation beyond the body's one (a status
// line made per answer, io.NopCloser around a bytes.Reader: three).
func TestDecodeResponseBodyAllocs(t *testing.T) {
	body := []byte("hello")
	allocs := testing.AllocsPerRun(100, func() {
		resp := newResponse(http.StatusOK, nil, nil, body, int64(len(body)))
		if resp.Status != "200 OK" {
			t.Fatal(resp.Status)
		}
	})
	// The *http.Response and its body.
	if allocs > 2 {
		t.Fatalf("%v allocations a response, want 2", allocs)
	}
	if got := statusLine(799); got != "799 " {
		t.Fatalf("statusLine(799) = %q", got)
	}
	if got := statusLine(418); got != "418 I'm a teapot" {
		t.Fatalf("statusLine(418) = %q", got)
	}
}
