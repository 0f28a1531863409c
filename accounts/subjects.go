package accounts

import "strings"

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

// subjectOf is the subject of a permission entry, without the queue group
// of a "subject queue" subscribe permission.
func subjectOf(entry string) string {
	subject, _, _ := strings.Cut(entry, " ")
	return subject
}
