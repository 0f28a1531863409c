package accounts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"
)

// SeedFile is where Generate keeps the NKey seed of user (a service,
// Bridge, the admin or SysUser): DIR/<user>.nk, mode 0600.
func SeedFile(dir, user string) string { return filepath.Join(dir, user+".nk") }

// CredsFile is the operator-mode credentials file (user JWT and seed) of
// user: DIR/<user>.creds, mode 0600.
func CredsFile(dir, user string) string { return filepath.Join(dir, user+".creds") }

// ConfigFile is the nats-server configuration Generate writes into dir.
func ConfigFile(dir string) string { return filepath.Join(dir, "nats.conf") }

// keyFile loads the seed at path, or makes a new key of kind and writes
// its seed there when the file does not exist or rotate is set. A seed of
// another kind (an account key where a user key belongs) is an error.
// It returns the previous key's public key when it replaced one.
func keyFile(path string, kind nkeys.PrefixByte, rotate bool) (kp nkeys.KeyPair, replaced string, err error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		old, err := nkeys.FromSeed(bytes.TrimSpace(data))
		if err != nil {
			return nil, "", fmt.Errorf("accounts: %s: not an NKey seed", path)
		}
		pub, _ := old.PublicKey()
		if _, err := nkeys.Decode(kind, []byte(pub)); err != nil {
			return nil, "", fmt.Errorf("accounts: %s: seed of a %q key where a %v key belongs", path, pub[:1], kind)
		}
		if !rotate {
			// A seed someone made readable to others is still a secret.
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, "", fmt.Errorf("accounts: %w", err)
			}
			return old, "", nil
		}
		replaced = pub
	case !errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("accounts: %w", err)
	}
	kp, err = nkeys.CreatePair(kind)
	if err != nil {
		return nil, "", fmt.Errorf("accounts: new key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, "", fmt.Errorf("accounts: new key: %w", err)
	}
	if err := writeSecret(path, append(seed, '\n')); err != nil {
		return nil, "", err
	}
	return kp, replaced, nil
}

// writeSecret replaces path atomically with data, mode 0600, so that a
// crash leaves either the old file or the new one and the secret is never
// readable by others, not even for a moment.
func writeSecret(path string, data []byte) error {
	return writeFile(path, data, 0o600)
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("accounts: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("accounts: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("accounts: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	return nil
}
