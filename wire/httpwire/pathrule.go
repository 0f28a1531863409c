package httpwire

import (
	"fmt"
	"strings"

	"github.com/natsmesh/natsmesh/wire"
)

// AmbiguousPath reports whether the escaped path p means different things
// to servers that decode it differently: it has a dot segment ("." or
// "..") once decoded, with "%2F", "%5C" and "\" read as separators and
// escapes decoded until none is left, and it is spelled with an escaped
// slash or backslash, a raw backslash, an escaped dot or a double escape
// ("%25"). "/admin%2F..%2Fstock" is /stock to a server that decodes
// before it resolves dot segments, and /admin%2F..%2Fstock (one segment
// under /admin) to one that routes on the raw target; path rules, matched
// on the first reading, would admit what the second serves. Every HTTP
// entry point refuses such a path with bad-request, as Envoy's
// path_with_escaped_slashes_action REJECT_REQUEST does; a dot segment
// spelled with plain "/" and "." is resolved the same way by every
// server, and a path with escapes but no dot segment names one path.
func AmbiguousPath(p string) bool {
	if !strings.ContainsAny(p, "%\\") {
		return false
	}
	spelled := false
	for _, esc := range []string{"%2f", "%5c", "%2e", "%25", "\\"} {
		if containsFold(p, esc) {
			spelled = true
			break
		}
	}
	if !spelled {
		return false
	}
	d := p
	for range 4 { // each round peels one layer of escapes
		next := decodeEscapes(d)
		if next == d {
			break
		}
		d = next
	}
	d = strings.ReplaceAll(d, "\\", "/")
	for seg := range strings.SplitSeq(d, "/") {
		if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
			return true
		}
	}
	return false
}

// checkPath refuses an ambiguous path ([AmbiguousPath]) with bad-request.
func checkPath(p string) error {
	if AmbiguousPath(p) {
		return &wire.Error{Kind: wire.KindBadRequest, Message: fmt.Sprintf("path %.64q has dot segments spelled with escaped slashes, backslashes, escaped dots or double escapes: its meaning depends on how a server decodes it", p)}
	}
	return nil
}

// containsFold reports whether s contains sub, ASCII case-insensitively.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// decodeEscapes decodes the valid percent escapes of s once, leaving
// invalid ones as they are.
func decodeEscapes(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
