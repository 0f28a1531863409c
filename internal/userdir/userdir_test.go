package userdir

import (
	"path/filepath"
	"testing"
)

func TestDirs(t *testing.T) {
	home, xdg := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		name, env, value, want string
		f                      func(...string) (string, error)
	}{
		{"data from XDG", "XDG_DATA_HOME", xdg, filepath.Join(xdg, "natsmesh", "broker", "n1"), Data},
		{"data from HOME", "XDG_DATA_HOME", "", filepath.Join(home, ".local", "share", "natsmesh", "broker", "n1"), Data},
		{"relative XDG ignored", "XDG_DATA_HOME", "rel/dir", filepath.Join(home, ".local", "share", "natsmesh", "broker", "n1"), Data},
		{"state from XDG", "XDG_STATE_HOME", xdg, filepath.Join(xdg, "natsmesh", "broker", "n1"), State},
		{"state from HOME", "XDG_STATE_HOME", "", filepath.Join(home, ".local", "state", "natsmesh", "broker", "n1"), State},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			got, err := tc.f("broker", "n1")
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Setenv("HOME", "")
	t.Setenv("XDG_STATE_HOME", "")
	if got, err := State("x"); err == nil {
		t.Errorf("without HOME or XDG_STATE_HOME: %q, want an error", got)
	}
}
