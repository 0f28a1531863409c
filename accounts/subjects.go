package accounts

import (
	"slices"
	"strings"
)

// Subject patterns as nats-server reads permissions: tokens separated by
// ".", where a token "*" matches any one token and a last token ">" matches
// one or more tokens. Any other token, "a*" included, is a literal.

// intersects reports whether some subject matches both patterns a and b.
func intersects(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			// The shorter pattern is exhausted; the longer one still
			// wants a token, which the shorter one's subjects lack.
			return false
		case at[i] == ">" || bt[i] == ">":
			// ">" takes this token and any after it; the other pattern
			// has a token here, and whatever it wants after is allowed.
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
			continue
		default:
			return false
		}
	}
}

// subsetOf reports whether every subject that matches pattern a also
// matches pattern b.
func subsetOf(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			return false
		case bt[i] == ">":
			return true
		case at[i] == ">":
			return false
		case bt[i] == "*" || at[i] == bt[i]:
			continue
		default:
			return false
		}
	}
}

// meet returns the pattern of the subjects that match both patterns a and
// b, and whether there is any (intersects(a, b)).
func meet(a, b string) (string, bool) {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	out := make([]string, 0, max(len(at), len(bt)))
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return strings.Join(out, "."), true
		case i == len(at) || i == len(bt):
			return "", false
		case at[i] == ">":
			return strings.Join(append(out, bt[i:]...), "."), true
		case bt[i] == ">":
			return strings.Join(append(out, at[i:]...), "."), true
		case at[i] == "*":
			out = append(out, bt[i])
		case bt[i] == "*" || at[i] == bt[i]:
			out = append(out, at[i])
		default:
			return "", false
		}
	}
}

// Overlap returns the subjects p lets its user both publish and subscribe
// to, as patterns, once each: for each publish permission and each
// subscribe permission (a queue group's aside) that a subject matches,
// the pattern of those subjects. A message its user publishes there comes
// back to it; with response permissions (which no generated user has:
// CheckUsers) its reply subject would be the user's to publish to. The
// tests of issue 16 try each.
func Overlap(p *Permissions) []string {
	var out []string
	for _, pub := range p.Publish {
		for _, sub := range p.Subscribe {
			if m, ok := meet(pub, subjectOf(sub)); ok && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// subjectOf is the subject of a permission entry, without the queue group
// of a "subject queue" subscribe permission.
func subjectOf(entry string) string {
	subject, _, _ := strings.Cut(entry, " ")
	return subject
}
