// Package userdir names the per-user directories natsmesh keeps files in,
// after the XDG Base Directory Specification: data (a broker's JetStream
// store) under $XDG_DATA_HOME or ~/.local/share, state (an agent's last
// good mesh file) under $XDG_STATE_HOME or ~/.local/state. A relative
// XDG_* value is ignored, as the specification asks.
package userdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Data returns $XDG_DATA_HOME/natsmesh/elem... (~/.local/share/natsmesh/...
// without it). It creates nothing.
func Data(elem ...string) (string, error) {
	return dir("XDG_DATA_HOME", filepath.Join(".local", "share"), elem)
}

// State returns $XDG_STATE_HOME/natsmesh/elem... (~/.local/state/natsmesh/...
// without it). It creates nothing.
func State(elem ...string) (string, error) {
	return dir("XDG_STATE_HOME", filepath.Join(".local", "state"), elem)
}

func dir(env, fallback string, elem []string) (string, error) {
	base := os.Getenv(env)
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no per-user directory: %w (set %s or HOME)", err, env)
		}
		if !filepath.IsAbs(home) {
			return "", errors.New("no per-user directory: HOME is not an absolute path (set " + env + ")")
		}
		base = filepath.Join(home, fallback)
	}
	return filepath.Join(append([]string{base, "natsmesh"}, elem...)...), nil
}
