package live

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/natsmesh/natsmesh/policies"
)

// cached is what a cache file holds (SourceConfig.Cache): the last good
// mesh file applied from the store, its revision there and the digest of
// the store's bytes, so that the store's same version is not applied
// again over it.
type cached struct {
	Revision uint64          `json:"revision"`
	Digest   string          `json:"digest"`
	File     json.RawMessage `json:"file"`
}

var errNoCache = errors.New("no cache file")

// writeCache replaces the file at path with f, atomically (a temporary
// file in the same directory, synced, renamed over it), mode 0600.
func writeCache(path string, f *policies.File, rev uint64, d [sha256.Size]byte) error {
	data, err := f.JSON()
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(cached{Revision: rev, Digest: hex.EncodeToString(d[:]), File: data}, "", "  ")
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
	return os.Rename(tmp.Name(), path)
}

// readCache loads the file writeCache wrote at path; errNoCache if there
// is none.
func readCache(path string) (*policies.File, uint64, [sha256.Size]byte, error) {
	var d [sha256.Size]byte
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, d, errNoCache
	}
	if err != nil {
		return nil, 0, d, err
	}
	var c cached
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, 0, d, fmt.Errorf("%s: %w", path, err)
	}
	if n, err := hex.Decode(d[:], []byte(c.Digest)); err != nil || n != len(d) {
		return nil, 0, d, fmt.Errorf("%s: no valid digest", path)
	}
	f, err := policies.ParseStored(path, c.File)
	if err != nil {
		return nil, 0, d, err
	}
	return f, c.Revision, d, nil
}
