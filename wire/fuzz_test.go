package wire

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "GET", "/pkg.Svc/Method", "*", ">", "a.b", "$SYS", " \t\r\n", "\x00\x7f", "%", "%41", "é", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EscapeToken(s)
		if tok == "" {
			t.Fatalf("EscapeToken(%q) is empty", s)
		}
		if i := strings.IndexFunc(tok, func(r rune) bool {
			return r == '.' || r == '*' || r == '>' || r == '$' || r <= ' ' || r >= 0x7f
		}); i >= 0 {
			t.Fatalf("EscapeToken(%q) = %q has unsafe byte at %d", s, tok, i)
		}
		if !utf8.ValidString(tok) {
			t.Fatalf("EscapeToken(%q) = %q is not valid UTF-8", s, tok)
		}
		back, err := UnescapeToken(tok)
		if err != nil || back != s {
			t.Fatalf("UnescapeToken(EscapeToken(%q)) = %q, %v", s, back, err)
		}
		// Every token has one string: unescaping anything else must either
		// fail or give a string that escapes back to the same token.
		if u, err := UnescapeToken(s); err == nil && EscapeToken(u) != s {
			t.Fatalf("UnescapeToken(%q) = %q, which escapes to %q", s, u, EscapeToken(u))
		}
	})
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"mesh.orders._.web.http.GET", "mesh.orders.v1.web.grpc.%2Fpkg%2ESvc%2FGet", "mesh.a._.b.http.%",
		"mesh.orders..web.http.GET", "mesh.*.>.a.http.x", "mesh.a.b.c.http.%%", "mesh.a.b.c.d.e.f", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSubject(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseSubject(%q) error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("ParseSubject(%q).String() = %q", s, got)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed subject %+v does not validate: %v", p, err)
		}
	})
}
