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

// Dependency returns the version of module path that the binary was built
// with ("v2.12.1"), or "" when it is not a dependency or the build has no
// module information. A replaced module reports its replacement's version.
func Dependency(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}
