package live

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/natsmesh/natsmesh/policies"
)

// cached is what a cache file holds (SourceConfig.Cache): the mesh it was
// kept from (see meshID), the last good mesh file applied from the store,
// the generation of the bucket and the revision there, and the digest of
// the store's bytes, so that the store's same version is not applied
// again over it, nor an older one of the same generation.
type cached struct {
	Mesh       *meshID         `json:"mesh"`
	Generation string          `json:"generation,omitempty"`
	Revision   uint64          `json:"revision"`
	Digest     string          `json:"digest"`
	File       json.RawMessage `json:"file"`
}

// kept is a cache file as read: its fields, the file parsed and the digest.
type kept struct {
	cached
	file   *policies.File
	digest [sha256.Size]byte
}

var errNoCache = errors.New("no cache file")

// writeCache replaces the file at path with c holding f, atomically (a
// temporary file in the same directory, synced, renamed over it, the
// directory synced), mode 0600.
func writeCache(path string, c cached, f *policies.File) error {
	data, err := f.JSON()
	if err != nil {
		return err
	}
	c.File = data
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing there
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	return syncDir(dir)
}

// readCache loads the file writeCache wrote at path; errNoCache if there
// is none. It refuses a file that another user owns or that its group or
// others may write (see checkOwner).
func readCache(path string) (*kept, error) {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoCache
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat() // of the file opened, not of whatever the path names now
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if err := checkOwner(fi); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := io.ReadAll(fh)
	if err != nil {
		return nil, err
	}
	var k kept
	if err := json.Unmarshal(data, &k.cached); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if n, err := hex.Decode(k.digest[:], []byte(k.Digest)); err != nil || n != len(k.digest) {
		return nil, fmt.Errorf("%s: no valid digest", path)
	}
	if k.file, err = policies.ParseStored(path, k.File); err != nil {
		return nil, err
	}
	return &k, nil
}
