// Package buildinfo reads the source revision Go stamped into the binary.
package buildinfo

import "runtime/debug"

// Revision returns the VCS revision the binary was built from, "" when
// unknown, and whether the working tree had local modifications.
func Revision() (rev string, modified bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, modified
}
