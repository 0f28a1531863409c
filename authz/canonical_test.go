package authz_test

import (
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/natsmesh/natsmesh/authz"
)

// referenceCanonical is CanonicalPath as first written: every path copied
// byte by byte. CanonicalPath reads a path with nothing to decode without
// a copy; FuzzCanonicalPath checks the two agree. It decodes with strconv,
// not a copy of CanonicalPath's own hex helpers.
func referenceCanonical(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) {
				return "", false
			}
			v, err := strconv.ParseUint(p[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			c = byte(v)
			i += 2
		case c == '?' || c == '#':
			return "", false
		}
		if c < 0x20 || c == 0x7f {
			return "", false
		}
		if c == '\\' {
			c = '/'
		}
		b.WriteByte(c)
	}
	d := b.String()
	for seg := range strings.SplitSeq(d, "/") {
		if name, _, ok := strings.Cut(seg, ";"); ok && (name == "." || name == "..") {
			return "", false
		}
	}
	for i := 0; i+2 < len(d); i++ {
		if _, err := strconv.ParseUint(d[i+1:i+3], 16, 8); d[i] == '%' && err == nil {
			return "", false
		}
	}
	clean := path.Clean(d)
	if clean != "/" && strings.HasSuffix(d, "/") {
		clean += "/"
	}
	return clean, true
}

func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b/", "/a//b", "/a/./b/../c/", "/%2Fa", "/a\\b", "/a?b", "/a#", "/a\x00",
		"/%252F", "a", "", "/a/b/.", "/..", "//", "/a/%", "/%7f", "/x\x7f", "/public/..;/admin", "/a/.;x/b", "/a%3B/..;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := authz.CanonicalPath(p)
		want, ok := referenceCanonical(p)
		if (err == nil) != ok || got != want {
			t.Fatalf("CanonicalPath(%q) = %q, %v; want %q, %v", p, got, err, want, ok)
		}
	})
}

// TestCanonicalPathNoCopy: a clean path with nothing to decode costs no
// allocation, as every call's authorization reads one.
func TestCanonicalPathNoCopy(t *testing.T) {
	for _, p := range []string{"/items/1", "/items/", "/"} {
		if n := testing.AllocsPerRun(100, func() { authz.CanonicalPath(p) }); n != 0 {
			t.Errorf("%s: %v allocations", p, n)
		}
	}
}
