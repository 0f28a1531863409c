//go:build unix

package live

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a cache file that is not this user's alone: owned by
// another user, or writable by its group or others. What an agent applies
// when it starts without its store must be what it wrote itself.
func checkOwner(fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("writable by its group or others (mode %04o; this user's alone, 0600, is expected)", fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by this user (uid %d)", st.Uid, os.Geteuid())
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
